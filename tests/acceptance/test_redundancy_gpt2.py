"""Redundancy at GPT-2 small's shape: on random weights every run, on the real weights when present.

Prints the importance ranking and records the one-shot attention drop curve to
``$INTERP_REDUNDANCY_GPT2_OUT`` (default: a temporary directory). Run with ``-s`` to see it.
That dropping attention layers costs loss holds for the trained model only (marked ``gpt2``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from interp.redundancy import Module, drop_curve, importance

pytestmark = pytest.mark.slow

TEXT = (
    "The river runs past the old mill and under the stone bridge before it reaches the sea. In the spring the "
    "water rises, and the farmers who live along its banks move their animals to higher ground. The mill has "
    "not turned for many years, but the children of the village still play in its shadow and tell stories "
    "about the miller who lived there. Every summer a fair is held in the meadow beside the bridge, with music, "
    "food and games that last until the sun goes down. Travellers come from the nearby towns to buy cheese, "
    "wool and honey, and the inn is full for a week. When autumn comes the leaves turn red and gold, the nights "
    "grow longer, and the river grows quiet again. "
) * 6


def text_tokens(model, ctx: int = 64) -> torch.Tensor:
    ids = torch.tensor(model.tokenizer(TEXT, add_special_tokens=False)["input_ids"])  # to_tokens would truncate
    body = ids[: (len(ids) // (ctx - 1)) * (ctx - 1)].view(-1, ctx - 1)
    bos = torch.full((body.shape[0], 1), model.tokenizer.bos_token_id)
    return torch.cat([bos, body], dim=1)


def attention_drop_curve(model, tmp_path, max_drop: int):
    tokens = text_tokens(model)
    half = tokens.shape[0] // 2
    calibration, heldout = tokens[:half], tokens[half:]
    assert len(calibration) >= 2 and len(heldout) >= 2

    imp = importance(model, calibration, batch_size=2)
    print("\nimportance (1 - cos):\n" + imp.summary())
    print("most redundant (joint):", ", ".join(str(m) for m in imp.ranking(("attn", "mlp"))))
    assert all(0 <= v <= 2 for v in imp.attn + imp.mlp + imp.block)

    curve = drop_curve(model, calibration, heldout, "attn", "one-shot", batch_size=2, max_drop=max_drop,
                       timing_tokens=heldout[:1], timing_repeats=2)
    print("attention one-shot drop curve:", [(p.n_dropped, round(p.loss, 4), round(p.speedup, 2)) for p in curve.points])
    out = Path(os.environ.get("INTERP_REDUNDANCY_GPT2_OUT", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpt2_redundancy.json").write_text(json.dumps({"importance": imp.to_dict(), "curve": curve.to_dict()}, indent=1))
    assert [p.n_dropped for p in curve.points] == list(range(max_drop + 1))
    assert all(p.skip_max_abs_diff < 1e-3 for p in curve.points)
    assert Module.parse(curve.order[0]).kind == "attn"
    return curve


def test_gpt2_ranking_and_attention_drop_curve(gpt2_like, gpt2_like_spec, tmp_path):
    attention_drop_curve(gpt2_like, tmp_path, max_drop=6 if gpt2_like_spec == "gpt2" else 3)


@pytest.mark.gpt2
def test_gpt2_loses_loss_as_attention_layers_drop(gpt2_model, tmp_path):
    curve = attention_drop_curve(gpt2_model, tmp_path, max_drop=6)
    assert curve.points[-1].loss > curve.points[0].loss
