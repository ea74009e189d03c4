"""A planted model for cross-layer transcoders: its MLPs at layers 0 and 2 compute the same
function of the layer-0 residual stream (layer 1 leaves that subspace alone), so one CLT
feature reading at layer 0 and writing to outputs 0 and 2 explains both (:func:`exact_clt`),
where per-layer transcoders need a feature at each layer (:func:`exact_per_layer`)."""

from __future__ import annotations

import torch

from interp.transcoders.clt import CrossLayerTranscoder

PLANTED_D, PLANTED_VOCAB, PLANTED_CTX = 24, 64, 16


def planted_model():
    """MLPs 0 and 2 compute the same function of the layer-0 residual stream; layer 1 leaves it alone.

    No attention (``W_O = 0``) and no LayerNorm, so the residual at layer 2 is the embedding plus
    the outputs of MLPs 0 and 1. Neuron ``j`` of MLPs 0 and 2 reads direction ``u_j`` with bias
    -0.5 and writes ``2 v0_j`` / ``2 v2_j``; MLP 1's neurons read ``w`` and write ``v1``. All
    these directions are orthonormal, so no MLP writes where a neuron reads: ``u_j`` at layer 2
    is ``u_j`` of the embedding. Each token's embedding lies along at most one ``u_j`` (and one
    ``w_k``); positions add a little along them, so activations vary continuously.
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    D, V, C = PLANTED_D, PLANTED_VOCAB, PLANTED_CTX
    cfg = HookedTransformerConfig(n_layers=3, d_model=D, n_heads=2, d_head=12, d_mlp=8, d_vocab=V, n_ctx=C,
                                  act_fn="relu", normalization_type=None, seed=0, device="cpu")
    model = HookedTransformer(cfg).eval()
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g))
    dirs = {"u": Q[:, 0:3], "w": Q[:, 3:5], "v0": Q[:, 5:8], "v1": Q[:, 8:10], "v2": Q[:, 10:13]}
    junk = Q[:, 13:]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        emb = torch.randn(V, junk.shape[1], generator=g) @ junk.T
        for t in range(V):
            if t % 4 < 3:
                emb[t] += (1.0 + torch.rand((), generator=g)) * dirs["u"][:, t % 4]
            if (t // 4) % 3 < 2:
                emb[t] += (1.0 + torch.rand((), generator=g)) * dirs["w"][:, (t // 4) % 3]
        model.W_E.copy_(emb)
        model.W_pos.copy_(0.3 * torch.randn(C, 5, generator=g) @ torch.cat([dirs["u"], dirs["w"]], 1).T)
        model.W_U.copy_(torch.randn(D, V, generator=g))
        for layer, (reads, writes) in enumerate([(dirs["u"], dirs["v0"]), (dirs["w"], dirs["v1"]), (dirs["u"], dirs["v2"])]):
            mlp, n = model.blocks[layer].mlp, reads.shape[1]
            mlp.W_in[:, :n] = reads
            mlp.b_in[:n] = -0.5
            mlp.W_out[:n] = 2 * writes.T
    return model, dirs


def exact_clt(model, dirs) -> CrossLayerTranscoder:
    """The planted model's MLPs as a CLT: one layer-0 latent per shared neuron writing to outputs 0 and 2."""
    D, F = PLANTED_D, 4
    W_enc = torch.zeros(3, D, F)
    W_enc[0, :, :3], W_enc[1, :, :2] = dirs["u"], dirs["w"]
    b_enc = torch.zeros(3, F)
    b_enc[0, :3], b_enc[1, :2] = -0.5, -0.5
    b_enc[2] = -1.0  # layer-2 latents never fire
    decoders = [torch.zeros(F, 3, D), torch.zeros(F, 2, D), torch.zeros(F, 1, D)]
    decoders[0][:3, 0], decoders[0][:3, 2] = 2 * dirs["v0"].T, 2 * dirs["v2"].T
    decoders[1][:2, 0] = 2 * dirs["v1"].T
    return CrossLayerTranscoder.from_weights(W_enc, b_enc, decoders, layers=[0, 1, 2])


def exact_per_layer(dirs) -> CrossLayerTranscoder:
    """The planted model's MLPs as per-layer transcoders: each latent writes to its own layer only,
    so layers 0 and 2 each need a latent per shared neuron. Written as a CLT whose cross-layer
    decoders are zero (per-layer transcoders reading ``resid_mid``): this model has no norms, and
    interp's per-layer transcoders read ``ln2.hook_normalized``, which a norm-free model lacks."""
    D, F = PLANTED_D, 4
    W_enc = torch.zeros(3, D, F)
    W_enc[0, :, :3], W_enc[1, :, :2], W_enc[2, :, :3] = dirs["u"], dirs["w"], dirs["u"]
    b_enc = torch.full((3, F), -0.5)
    b_enc[:, 3], b_enc[1, 2] = -1.0, -1.0  # unused latents never fire
    decoders = [torch.zeros(F, 3, D), torch.zeros(F, 2, D), torch.zeros(F, 1, D)]
    decoders[0][:3, 0], decoders[1][:2, 0], decoders[2][:3, 0] = 2 * dirs["v0"].T, 2 * dirs["v1"].T, 2 * dirs["v2"].T
    return CrossLayerTranscoder.from_weights(W_enc, b_enc, decoders, layers=[0, 1, 2])
