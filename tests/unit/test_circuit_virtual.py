"""Virtual weights, de-embeddings and direct logit effects against what the features do.

The truth here is behavioural: in a residual stream without attention or LayerNorm, a source
feature firing with activation 1 adds its decoder output to the stream, and the target
feature's pre-activation moves by exactly its virtual weight. Transcoders carry non-trivial
normalisation, so the folding is checked too.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from interp.circuits import deembedding, direct_logit_effects, virtual_weights
from interp.errors import ConfigError
from interp.transcoders import registry

D, F = 6, 10


def _per_layer(seed: int):
    arch = registry.get("relu")
    tc = arch.transcoder(arch.config(d_in=D, d_out=D, d_sae=F), seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    tc.set_normalisation(3.0 * torch.randn(50, D, generator=g, dtype=torch.float64) + 1.0,
                         0.5 * torch.randn(50, D, generator=g, dtype=torch.float64) - 2.0)
    with torch.no_grad():
        tc.b_dec.normal_(generator=g)
    return tc


def _clt(n_layers: int = 3, seed: int = 0):
    arch = registry.get("clt")
    clt = arch.transcoder(arch.config(d_in=D, d_out=D, d_sae=F, n_layers=n_layers, activation="relu"), seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    clt.set_normalisation(2.0 * torch.randn(60, n_layers, D, generator=g, dtype=torch.float64) + 0.5,
                          3.0 * torch.randn(60, n_layers, D, generator=g, dtype=torch.float64) - 1.0)
    return clt


def _one_hot_writes(decode, n: int) -> torch.Tensor:
    """What each feature adds per unit activation: decode(e_i) - decode(0), [n, d]."""
    eye = torch.eye(n, dtype=torch.float64)
    return decode(eye) - decode(torch.zeros(1, n, dtype=torch.float64))


def test_per_layer_virtual_weights_move_the_target_pre_activation():
    source, target = _per_layer(1), _per_layer(2)
    writes = _one_hot_writes(source.decode, F)
    x = torch.randn(1, D, dtype=torch.float64)
    moved = target.pre_activation(x + writes) - target.pre_activation(x)
    torch.testing.assert_close(virtual_weights(source, target), moved)
    assert not source.is_folded  # the caller's transcoders are left as they were


def test_clt_virtual_weights_sum_the_writes_before_the_target_layer():
    clt = _clt(3)
    x = torch.randn(1, D, dtype=torch.float64)
    for s, t in ((0, 1), (0, 2), (1, 2)):
        # a feature of s writes to every output layer o >= s; the stream at t has the outputs of o < t
        def decode_into(o, s=s):
            def run(acts):
                code = torch.zeros(acts.shape[0], o + 1, F, dtype=torch.float64)
                code[:, s] = acts
                return clt.decode_output(code, o)
            return run

        delta = sum(_one_hot_writes(decode_into(o), F) for o in range(s, t))
        moved = clt.layer_pre_activation(x + delta, t) - clt.layer_pre_activation(x, t)
        torch.testing.assert_close(virtual_weights(clt, source_layer=s, target_layer=t), moved)
    # a later output layer's write does not reach an earlier read: (0, 1) differs from (0, 2)
    assert not torch.allclose(virtual_weights(clt, source_layer=0, target_layer=1),
                              virtual_weights(clt, source_layer=0, target_layer=2))


def _model(vocab: int = 7):
    g = torch.Generator().manual_seed(9)
    return SimpleNamespace(W_E=torch.randn(vocab, D, generator=g, dtype=torch.float64),
                           W_U=torch.randn(D, vocab, generator=g, dtype=torch.float64))


def test_deembedding_and_direct_logit_effects_per_layer():
    model, tc = _model(), _per_layer(3)
    moved = tc.pre_activation(model.W_E) - tc.pre_activation(torch.zeros(1, D, dtype=torch.float64))
    torch.testing.assert_close(deembedding(model, tc), moved)
    torch.testing.assert_close(direct_logit_effects(model, tc), _one_hot_writes(tc.decode, F) @ model.W_U)


def test_deembedding_and_direct_logit_effects_of_a_clt():
    model, clt = _model(), _clt(3)
    for layer in range(3):
        zero = torch.zeros(1, D, dtype=torch.float64)
        moved = clt.layer_pre_activation(model.W_E, layer) - clt.layer_pre_activation(zero, layer)
        torch.testing.assert_close(deembedding(model, clt, layer=layer), moved)

        def everywhere(acts, layer=layer):  # the feature's writes into every output layer, summed
            total = 0
            for o in range(layer, 3):
                code = torch.zeros(acts.shape[0], o + 1, F, dtype=torch.float64)
                code[:, layer] = acts
                total = total + clt.decode_output(code, o)
            return total

        torch.testing.assert_close(direct_logit_effects(model, clt, layer=layer), _one_hot_writes(everywhere, F) @ model.W_U)


@pytest.mark.parametrize(("call", "match"), [
    (lambda tc, clt: virtual_weights(clt), "needs source_layer and target_layer"),
    (lambda tc, clt: virtual_weights(clt, source_layer=2, target_layer=1), "cannot reach layer 1: pass source_layer < target_layer"),
    (lambda tc, clt: virtual_weights(clt, source_layer=1, target_layer=1), "cannot reach"),
    (lambda tc, clt: virtual_weights(clt, source_layer=0, target_layer=5), "layer 5 is not one of this CLT's layers"),
    (lambda tc, clt: virtual_weights(tc, clt), "per-layer transcoder into a CLT is not defined"),
    (lambda tc, clt: virtual_weights(tc, tc, source_layer=0), "takes no source_layer=0"),
    (lambda tc, clt: virtual_weights(tc), "needs a target transcoder"),
    (lambda tc, clt: deembedding(_model(), clt), "needs layer="),
    (lambda tc, clt: direct_logit_effects(_model(), tc, layer=1), "takes no layer=1"),
])
def test_bad_layer_arguments_say_what_to_pass(call, match):
    with pytest.raises(ConfigError, match=match):
        call(_per_layer(0), _clt(3))


def test_folding_keeps_the_transcoders_precision():
    assert _per_layer(0).folded().W_enc.dtype == torch.float64
    assert _clt(2).folded().W_enc.dtype == torch.float64
