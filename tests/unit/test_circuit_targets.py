"""Which logits a trace explains: circuit-tracer's salient targets (top tokens up to a
cumulative probability, capped) on a model whose next-token distribution is planted, and
every other way to name targets. circuit-tracer's own selection is compared in
tests/integration/test_circuit_tracer_interop.py."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.circuits import LogitTarget, TraceConfig, difference_target, resolve_targets, salient_targets
from interp.errors import TargetError

# token -> probability at every position: 3, 7, 1, 0 carry 0.96; six others share 0.04
PLANTED = {3: 0.5, 7: 0.3, 1: 0.1, 0: 0.06, **{t: 0.04 / 6 for t in (2, 4, 5, 6, 8, 9)}}


@pytest.fixture(scope="module")
def planted_logits():
    """A one-layer model with zero unembedding weights: its logits are its unembedding bias,
    set to log-probabilities, whatever the prompt."""
    cfg = HookedTransformerConfig(n_layers=1, d_model=8, d_head=4, n_heads=2, d_mlp=8, d_vocab=10, n_ctx=8,
                                  act_fn="relu", normalization_type=None)
    model = HookedTransformer(cfg)
    with torch.no_grad():
        model.unembed.W_U.zero_()
        model.unembed.b_U.copy_(torch.tensor([math.log(PLANTED[t]) for t in range(10)]))
    return model


PROMPT = torch.tensor([1, 2, 3])


@pytest.mark.parametrize(
    ("max_n_logits", "desired", "expected"),
    [
        (10, 0.95, [3, 7, 1, 0]),  # 0.5 + 0.3 + 0.1 < 0.95 <= + 0.06
        (10, 0.85, [3, 7, 1]),
        (10, 0.4, [3]),
        (2, 0.95, [3, 7]),  # capped
    ],
)
def test_salient_targets_are_the_fewest_top_tokens_reaching_the_probability(planted_logits, max_n_logits, desired, expected):
    got = salient_targets(planted_logits, PROMPT, max_n_logits, desired)
    assert [t.token for t in got] == expected


def test_probability_one_takes_the_top_tokens_up_to_the_cap(planted_logits):
    """What TraceConfig(n_top_logits=k) means now: max_n_logits=k, desired_logit_prob=1.0."""
    got = [t.token for t in salient_targets(planted_logits, PROMPT, 5, 1.0)]
    assert got[:4] == [3, 7, 1, 0] and len(got) == 5 and got[4] in (2, 4, 5, 6, 8, 9)


def test_none_resolves_to_the_configs_salient_targets(planted_logits):
    assert [t.token for t in resolve_targets(planted_logits, PROMPT, None)] == [3, 7, 1, 0]
    cfg = TraceConfig(max_n_logits=3, desired_logit_prob=0.99)
    assert [t.token for t in resolve_targets(planted_logits, PROMPT, None, cfg)] == [3, 7, 1]


def test_tokens_targets_and_lists_resolve_as_given(planted_logits):
    diff = difference_target(planted_logits, [3], [7], "3 - 7")
    assert [t.token for t in resolve_targets(planted_logits, PROMPT, 7)] == [7]
    assert resolve_targets(planted_logits, PROMPT, diff) == [diff]
    assert [t.token for t in resolve_targets(planted_logits, PROMPT, torch.tensor([4, 2]))] == [4, 2]
    mixed = resolve_targets(planted_logits, PROMPT, [7, diff])
    assert mixed[0].token == 7 and mixed[1] is diff and all(isinstance(t, LogitTarget) for t in mixed)
    with pytest.raises(TargetError, match="the target list is empty"):
        resolve_targets(planted_logits, PROMPT, [])
    unchecked = inspect.unwrap(resolve_targets)  # as a caller meets it, without the test suite's run-time type checks
    with pytest.raises(TargetError, match="a target is a token .* got float"):
        unchecked(planted_logits, PROMPT, [7, 1.5])
    with pytest.raises(TargetError, match="outside the vocabulary"):
        resolve_targets(planted_logits, PROMPT, [12])
    with pytest.raises(TargetError, match="no tokenizer"):
        resolve_targets(planted_logits, PROMPT, "seven")
