"""The TopK transcoders' training loss with dead latents (MSE + AuxK, Gao et al. 2024) against a
dense reference written out here: same loss and same gradients, though interp computes the AuxK
selection inside the sparse encoder and never forms a gradient of the dense pre-activations."""

from __future__ import annotations

import pytest
import torch

from interp.transcoders import registry


def _dense_loss(tc, x, y, dead):
    """MSE + aux_coefficient * AuxK from dense tensors only (the formula, not interp's kernels)."""
    x_n, y_n = tc.normalise_in(x), tc.normalise_out(y)
    pre = x_n @ tc.W_enc + tc.b_enc
    top = pre.topk(tc.cfg.k, dim=1)
    acts = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
    y_hat = acts @ tc.W_dec + tc.b_dec
    if tc.has_skip:
        y_hat = y_hat + x_n @ tc.W_skip.T
    mse = (y_hat - y_n).pow(2).mean()
    aux_k = min(tc.cfg.aux_k or tc.cfg.d_out // 2, int(dead.sum()))
    aux = pre.masked_fill(~dead, float("-inf")).topk(aux_k, dim=1)
    aux_acts = torch.zeros_like(pre).scatter(1, aux.indices, aux.values.relu())
    residual = (y_n - y_hat).detach()
    variance = (residual - residual.mean(0)).pow(2).sum(-1).mean()
    auxk = (aux_acts @ tc.W_dec - residual).pow(2).sum(-1).mean() / variance
    return mse + tc.cfg.aux_coefficient * auxk, auxk


@pytest.mark.parametrize("arch", ["topk", "skip_topk"])
@pytest.mark.parametrize("aux_k", [None, 5, 40])  # d_out // 2; fewer than the dead; more than the 20 dead (capped)
def test_auxk_loss_and_gradients_equal_the_dense_formula(arch, aux_k):
    spec = registry.get(arch)
    tc = spec.transcoder(spec.config(d_in=12, d_out=10, d_sae=64, k=4, aux_k=aux_k), seed=3).double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(80, 12, generator=g, dtype=torch.float64) * 2 + 1
    y = torch.randn(80, 10, generator=g, dtype=torch.float64) - 0.5
    tc.set_normalisation(x, y)
    dead = torch.zeros(64, dtype=torch.bool)
    dead[torch.randperm(64, generator=g)[:20]] = True

    out = tc.loss(x, y, progress=0.5, dead=dead)
    out.loss.backward()
    got = {name: p.grad.clone() for name, p in tc.named_parameters()}
    tc.zero_grad(set_to_none=True)
    want_loss, want_aux = _dense_loss(tc, x, y, dead)
    want_loss.backward()

    assert "auxk" in out.parts and out.parts["auxk"] > 0
    torch.testing.assert_close(out.parts["auxk"], want_aux.detach())
    torch.testing.assert_close(out.loss, want_loss)
    for name, p in tc.named_parameters():
        torch.testing.assert_close(got[name], p.grad, msg=f"gradient of {name}")
    assert got["W_enc"][:, dead].abs().sum() > 0  # the dead latents' encoder columns learn from AuxK
