"""The greater-than analysis' measurements (analyses/greater_than.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gt():
    spec = importlib.util.spec_from_file_location("greater_than", ROOT / "analyses" / "greater_than.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_reference_model_does_greater_than(gt, reference_model):
    prompt = gt.PROMPTS["reference"]
    clean = gt.clean_prob_diff(reference_model, prompt, 45)
    assert clean > 0.5
    tokens = reference_model.to_tokens(prompt)[0]
    assert gt.yy_position(reference_model, tokens, 45) == len(tokens) - 5


def test_head_ablation_changes_only_the_last_position(gt, reference_model):
    tokens = reference_model.to_tokens(gt.PROMPTS["reference"])[0]
    with torch.no_grad():
        clean = reference_model(tokens[None])[0]
    ablated = gt.ablate_head(reference_model, tokens, 0, 0, len(tokens) - 1)
    torch.testing.assert_close(ablated[:-1], clean[:-1])
    assert not torch.allclose(ablated[-1], clean[-1])


def test_gpt2_clean_probability_difference_is_measured(gt, gpt2_like):
    years = gt.year_tokens(gpt2_like)
    assert len(set(years)) == 100
    clean = gt.clean_prob_diff(gpt2_like, gt.PROMPTS["gpt2"], 35)
    assert -1.0 <= clean <= 1.0


@pytest.mark.gpt2
def test_gpt2_clean_probability_difference_matches_published(gt, gpt2_model):
    """Published (Hanna et al. 2023; Dunefsky et al. 2024): 0.883 on this prompt."""
    clean = gt.clean_prob_diff(gpt2_model, gt.PROMPTS["gpt2"], 35)
    assert clean == pytest.approx(0.883, abs=0.02)
