"""Tiny transformer-lens models with mechanisms planted by setting weights by hand.

Analyses are tested against these: their answers are known exactly.

All planted models share one construction. Token embeddings are orthonormal and
mean-zero across ``d_model`` (so a LayerNorm without weights only rescales them by
``sqrt(d_model)``), the unembedding is tied to them, positional embeddings are zero,
and LayerNorms are weightless (``LNPre``, as after transformer-lens folds them). A token
``t`` at the MLP input is therefore exactly ``sqrt(d_model) * e_t``, which lets a neuron
read one token and write another without interference.

- :func:`neuron_model`: neuron ``n`` of layer 0 fires only on token A and writes
  token B's unembedding direction.
- :func:`noop_model`: a random model in which one attention layer or one MLP is an
  exact no-op (its output weights and bias are zero), or only rescales the residual.
- :func:`density_model`: an MLP whose neuron ``j`` fires on exactly ``k_j`` tokens, so
  on a stream holding every token equally often its activation density is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.errors import ConfigError


def _config(n_layers: int, d_model: int, d_mlp: int, d_vocab: int, n_ctx: int, act_fn: str, seed: int):
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=2,
        d_head=d_model // 2,
        d_mlp=d_mlp,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        act_fn=act_fn,
        normalization_type="LNPre",
        positional_embedding_type="standard",
        seed=seed,
        device="cpu",
    )


def orthonormal_embeddings(d_vocab: int, d_model: int, seed: int = 0) -> torch.Tensor:
    """``d_vocab`` orthonormal rows of width ``d_model``, each with mean zero."""
    if d_model < d_vocab + 1:
        raise ConfigError(f"need d_model >= d_vocab + 1 for orthonormal mean-zero embeddings, got {d_model} and {d_vocab}")
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(d_model, d_vocab, generator=generator, dtype=torch.float64)
    raw = raw - raw.mean(dim=0, keepdim=True)
    q, _ = torch.linalg.qr(raw)
    return q.T.float().contiguous()


def _planted_base(n_layers: int, d_model: int, d_mlp: int, d_vocab: int, n_ctx: int, act_fn: str, seed: int):
    """A model with orthonormal tied embeddings, zero positions, and silent blocks."""
    from transformer_lens import HookedTransformer

    model = HookedTransformer(_config(n_layers, d_model, d_mlp, d_vocab, n_ctx, act_fn, seed))
    embed = orthonormal_embeddings(d_vocab, d_model, seed)
    with torch.no_grad():
        model.embed.W_E.copy_(embed)
        model.unembed.W_U.copy_(embed.T)
        model.unembed.b_U.zero_()
        model.pos_embed.W_pos.zero_()
        for block in model.blocks:
            block.attn.W_O.zero_()
            block.attn.b_O.zero_()
            block.mlp.W_in.zero_()
            block.mlp.b_in.zero_()
            block.mlp.W_out.zero_()
            block.mlp.b_out.zero_()
    model.eval()
    return model


@dataclass(frozen=True)
class PlantedNeuron:
    """Where the neuron is and what it does."""

    layer: int
    neuron: int
    read_token: int
    write_token: int


def neuron_model(
    read_token: int = 3,
    write_token: int = 7,
    neuron: int = 5,
    d_vocab: int = 16,
    d_model: int = 32,
    d_mlp: int = 16,
    strength: float = 4.0,
    seed: int = 0,
):
    """A 1-layer model whose neuron ``neuron`` fires only on ``read_token`` and writes ``write_token``.

    The neuron's input weights are ``e_A / sqrt(d_model)`` (pre-activation 1 on token A,
    0 on every other token), ReLU, and its output weights are ``strength * e_B``. All
    other weights of the block are zero. Returns ``(model, PlantedNeuron)``.
    """
    if read_token == write_token:
        raise ConfigError("read_token and write_token must differ")
    model = _planted_base(1, d_model, d_mlp, d_vocab, 16, "relu", seed)
    embed = model.embed.W_E.detach()
    with torch.no_grad():
        model.blocks[0].mlp.W_in[:, neuron] = embed[read_token] / d_model**0.5
        model.blocks[0].mlp.W_out[neuron] = strength * embed[write_token]
    return model, PlantedNeuron(0, neuron, read_token, write_token)


def noop_model(
    kind: str = "attn",
    layer: int = 1,
    mode: str = "zero",
    n_layers: int = 3,
    d_model: int = 32,
    d_vocab: int = 24,
    scale: float = 0.5,
    seed: int = 0,
):
    """A random model in which module ``kind`` ("attn" or "mlp") of ``layer`` is planted.

    ``mode="zero"``: the module's output is exactly zero (an exact no-op).
    ``mode="parallel"``: the module's output is ``scale`` times its input residual, so it
    only rescales the residual stream (cosine similarity of input and output is 1).
    Every other module keeps its random initialisation.
    """
    from transformer_lens import HookedTransformer

    if kind not in ("attn", "mlp"):
        raise ConfigError(f"kind must be 'attn' or 'mlp', got {kind!r}")
    if mode not in ("zero", "parallel"):
        raise ConfigError(f"mode must be 'zero' or 'parallel', got {mode!r}")
    cfg = _config(n_layers, d_model, 4 * d_model, d_vocab, 16, "gelu_new", seed)
    cfg.normalization_type = "LN"
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim >= 2:
                param.normal_(0, 0.2)
    block = model.blocks[layer]
    with torch.no_grad():
        if kind == "attn":
            block.attn.W_O.zero_()
            block.attn.b_O.zero_()
        else:
            block.mlp.W_out.zero_()
            block.mlp.b_out.zero_()
    if mode == "parallel":
        hook = f"blocks.{layer}.hook_{kind}_out"
        source = f"blocks.{layer}.hook_resid_{'pre' if kind == 'attn' else 'mid'}"
        _add_parallel_output(model, hook, source, scale)
    model.eval()
    return model


def _add_parallel_output(model, out_hook: str, source_hook: str, scale: float) -> None:
    """Make ``out_hook`` output ``scale * (value at source_hook)``, as a permanent hook."""
    store: dict[str, torch.Tensor] = {}

    def remember(value, hook):
        store["x"] = value
        return value

    def rescale(value, hook):
        return scale * store["x"]

    model.add_perma_hook(source_hook, remember)
    model.add_perma_hook(out_hook, rescale)


def density_model(
    active_tokens: list[int] | None = None,
    d_vocab: int = 20,
    d_model: int = 32,
    d_mlp: int = 8,
    seed: int = 0,
):
    """A 1-layer model whose neuron ``j`` is nonzero on exactly ``active_tokens[j]`` tokens.

    Neuron ``j`` fires (ReLU, pre-activation +1) on tokens ``0 .. active_tokens[j] - 1``
    and is exactly zero (pre-activation -1) on every other token. On a stream in which
    every token occurs equally often, neuron ``j``'s activation frequency is
    ``active_tokens[j] / d_vocab`` and the layer's density is their mean.
    Returns ``(model, expected_frequency)``.
    """
    if active_tokens is None:
        active_tokens = [(j * d_vocab) // d_mlp for j in range(d_mlp)]
    if len(active_tokens) != d_mlp:
        raise ConfigError(f"active_tokens needs one count per neuron ({d_mlp}), got {len(active_tokens)}")
    if any(not 0 <= k <= d_vocab for k in active_tokens):
        raise ConfigError(f"every count must be in [0, {d_vocab}]")
    model = _planted_base(1, d_model, d_mlp, d_vocab, 16, "relu", seed)
    embed = model.embed.W_E.detach()
    with torch.no_grad():
        for j, k in enumerate(active_tokens):
            sign = torch.full((d_vocab,), -1.0)
            sign[:k] = 1.0
            model.blocks[0].mlp.W_in[:, j] = (sign[:, None] * embed).sum(0) / d_model**0.5
            model.blocks[0].mlp.W_out[j] = embed[j % d_vocab] * 0.1
    expected = torch.tensor(active_tokens, dtype=torch.float64) / d_vocab
    return model, expected


def uniform_token_stream(d_vocab: int, repeats: int, ctx_len: int, seed: int = 0) -> torch.Tensor:
    """Every token exactly ``repeats`` times, shuffled, as rows of ``ctx_len`` tokens."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.arange(d_vocab).repeat(repeats)
    tokens = tokens[torch.randperm(len(tokens), generator=generator)]
    usable = (len(tokens) // ctx_len) * ctx_len
    if usable != len(tokens):
        raise ConfigError(f"d_vocab * repeats ({len(tokens)}) must be a multiple of ctx_len ({ctx_len})")
    return tokens.view(-1, ctx_len)
