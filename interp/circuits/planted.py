"""A tiny model with a planted circuit that crosses positions through one head.

Token A at any position -> layer-0 feature 0 ("saw A") -> head 1.0 moves it to later
positions -> layer-1 feature 0 ("A was before") -> raises the logit of token Z. Other
parts are decoys that fire but lead nowhere near Z: layer-0 feature 1 (fires on B),
feature 2 (always on), head 1.1 (moves token C's embedding into a direction nothing reads).
The transcoders equal the MLPs, so error terms are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.transcoders.base import Transcoder

A, B, C, D, Z = 1, 2, 3, 4, 5


@dataclass
class PlantedCircuit:
    model: HookedTransformer
    transcoders: dict[int, Transcoder]
    prompt: torch.Tensor
    """[B, A, C, D, D]: A at position 1, the target read at position 4."""
    target_token: int = Z

    def __repr__(self) -> str:
        c = self.model.cfg
        return (f"PlantedCircuit({c.n_layers} layers, d_model {c.d_model}, transcoders at layers {sorted(self.transcoders)}, "
                f"prompt {self.prompt.tolist()}, target token {self.target_token})")


def planted_circuit(d_model: int = 32, d_vocab: int = 12, seed: int = 0) -> PlantedCircuit:
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=d_model, d_head=8, n_heads=2, d_mlp=4, d_vocab=d_vocab, n_ctx=8,
        act_fn="relu", normalization_type="LNPre", seed=seed,
    )
    model = HookedTransformer(cfg)
    # an orthonormal basis orthogonal to the all-ones vector, so LayerNorm centring is a no-op
    basis = torch.linalg.qr(torch.cat([torch.ones(d_model, 1), torch.randn(d_model, d_model - 1)], 1))[0][:, 1:].T
    emb = basis[:d_vocab]
    f0_dir, moved, out_dir, decoy, decoy2, c_moved = basis[d_vocab : d_vocab + 6]
    scale = d_model**0.5  # LNPre maps a unit vector with mean zero to norm sqrt(d_model)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.W_E.copy_(emb)
        mlp0, mlp1 = model.blocks[0].mlp, model.blocks[1].mlp
        mlp0.W_in[:, 0] = emb[A] / scale * 2.0
        mlp0.b_in[0] = -1.0
        mlp0.W_in[:, 1] = emb[B] / scale * 2.0
        mlp0.b_in[1] = -1.0
        mlp0.b_in[2] = 0.5  # always on
        mlp0.W_out[0] = f0_dir
        mlp0.W_out[1] = decoy
        mlp0.W_out[2] = decoy2 * 0.5
        attn = model.blocks[1].attn  # W_Q = W_K = 0: uniform causal attention
        attn.W_V[0, :, 0] = f0_dir
        attn.W_O[0, 0, :] = moved * 4.0
        attn.W_V[1, :, 0] = emb[C]
        attn.W_O[1, 0, :] = c_moved
        mlp1.W_in[:, 0] = moved * 2.0
        mlp1.b_in[0] = -0.5
        mlp1.W_out[0] = out_dir
        model.unembed.W_U.copy_(emb.T * 0.1)
        model.unembed.W_U[:, Z] += out_dir * 3.0
    model.eval()
    transcoders = {
        layer: Transcoder.from_weights(b.mlp.W_in.detach(), b.mlp.b_in.detach(), b.mlp.W_out.detach(), b.mlp.b_out.detach())
        for layer, b in enumerate(model.blocks)
    }
    return PlantedCircuit(model, transcoders, torch.tensor([B, A, C, D, D]))
