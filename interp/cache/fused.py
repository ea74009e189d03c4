"""A fused forward pass for capturing activations from GPT-2-style models.

transformer-lens runs attention as separate einsums, a mask and a softmax, and GPT-2's
``gelu_new`` as five elementwise ops; that is the right choice for a model you hook and
patch anywhere, and most of the cost of a forward pass run only to read a few hook points.
When the model is a plain GPT-2-style ``HookedTransformer`` and every requested hook is
one this module knows, :func:`fused_capture` runs the same computation with fused torch
kernels instead: one ``addmm`` for the query, key and value projections,
``scaled_dot_product_attention`` (causal), a one-buffer ``gelu_new``, and buffers reused
between calls. It reads
the model's weights at each call, passes the same tensors to the sink as the hooks would,
and agrees with transformer-lens to float rounding (tested hook by hook). On the
reference model it runs 1.7-2.1x as fast on a CPU (2 threads), at GPT-2 small's shape
1.2x (the matmuls, which both share, are most of that forward); docs/benchmarks.md.

Anything else falls back to transformer-lens' own forward: another architecture (rotary,
RMSNorm, gated MLPs, grouped-query or local attention, parallel attention and MLP, ...),
a hook outside :data:`FUSED_HOOKS`, or any forward hook already attached to the model
(someone is patching it, so the real forward must run). :func:`fused_unsupported` says
why a model or hook list falls back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Int
from torch import Tensor

from interp.hooks import layer_of

# Hook-name suffixes inside block L that the fused forward emits, in the order it emits them.
FUSED_BLOCK_HOOKS = (
    "hook_resid_pre",
    "ln1.hook_normalized",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_in",
    "ln2.hook_normalized",
    "mlp.hook_pre",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
)
FUSED_HOOKS = ("hook_embed", "hook_pos_embed", *(f"blocks.L.{s}" for s in FUSED_BLOCK_HOOKS))
"""The hook points the fused forward can capture (``L`` is any block)."""

_TANH_GELU_SCALE = 2.0 * math.sqrt(2.0 / math.pi)


def _gelu_tanh(x: Tensor, out: Tensor | None = None) -> Tensor:
    """GPT-2's ``gelu_new``, ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    On a CPU it is computed as ``x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))`` (the same
    function: ``(1 + tanh(u)) / 2 = sigmoid(2u)``) in one buffer, twice as fast as torch's
    tanh GELU there and eight times transformer-lens' five-op version; elsewhere torch's
    fused kernel.
    """
    if x.device.type != "cpu":
        return F.gelu(x, approximate="tanh") if out is None else out.copy_(F.gelu(x, approximate="tanh"))
    # c + 0.044715 c x^2 (one addcmul), times x, sigmoid, times x: four passes over one buffer
    scale = torch.tensor(_TANH_GELU_SCALE, dtype=x.dtype)
    out = torch.addcmul(scale, x, x, value=0.044715 * _TANH_GELU_SCALE, out=out)
    return out.mul_(x).sigmoid_().mul_(x)


def _into(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor | None], Tensor]:
    return lambda x, out=None: fn(x) if out is None else out.copy_(fn(x))


_ACTIVATIONS: dict[str, Callable[[Tensor, Tensor | None], Tensor]] = {
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu": _into(F.gelu),
    "relu": lambda x, out=None: torch.clamp_min(x, 0.0, out=out) if out is not None else F.relu(x),
    "silu": _into(F.silu),
}

# Config fields that must hold these values (transformer-lens defaults) for the fused path.
_PLAIN_CONFIG = {
    "positional_embedding_type": "standard",
    "attn_only": False,
    "parallel_attn_mlp": False,
    "gated_mlp": False,
    "n_key_value_heads": None,
    "use_local_attn": False,
    "attention_dir": "causal",
    "post_embedding_ln": False,
    "use_normalization_before_and_after": False,
    "use_qk_norm": False,
    "clip_qkv": None,
    "use_logn_attn": False,
    "scale_attn_by_inverse_layer_idx": False,
    "attn_scores_soft_cap": -1.0,
    "num_experts": None,
    "use_attention_sinks": False,
    "use_attn_result": False,
    "use_split_qkv_input": False,
    "use_attn_in": False,
    "use_hook_tokens": False,
    "n_devices": 1,
}


def _hook_suffix(name: str) -> str | None:
    """``blocks.3.ln2.hook_normalized`` -> ``ln2.hook_normalized``; None outside the blocks."""
    layer = layer_of(name)
    if layer is None:
        return None
    return name.split(".", 2)[2]


def fused_unsupported(model, hook_names: Sequence[str]) -> str | None:
    """Why :func:`fused_capture` would fall back to transformer-lens, or None if it would not."""
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        return "the model has no transformer-lens config"
    for field, value in _PLAIN_CONFIG.items():
        if getattr(cfg, field, value) != value:
            return f"cfg.{field} is {getattr(cfg, field)!r} (the fused forward handles {value!r} only)"
    if cfg.normalization_type not in ("LN", "LNPre"):
        return f"cfg.normalization_type is {cfg.normalization_type!r} (the fused forward handles LN and LNPre)"
    if cfg.act_fn not in _ACTIVATIONS:
        return f"cfg.act_fn is {cfg.act_fn!r} (the fused forward handles {', '.join(_ACTIVATIONS)})"
    if getattr(cfg, "attn_types", None) not in (None, []) and any(t != "global" for t in cfg.attn_types):
        return "the model has local attention layers"
    if getattr(model, "tokenizer", None) is not None and getattr(model.tokenizer, "padding_side", "right") == "left":
        return "the tokenizer pads on the left, so transformer-lens masks the padding"
    for name in hook_names:
        suffix = _hook_suffix(name)
        if name not in ("hook_embed", "hook_pos_embed") and suffix not in FUSED_BLOCK_HOOKS:
            return f"{name} is not one of the hooks the fused forward emits ({', '.join(FUSED_HOOKS)})"
    for module in model.modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return "forward hooks are attached to the model, so its own forward must run"
    return None


class _Emitter:
    """Hands wanted activations to the sink; calling it says whether every hook has been emitted."""

    def __init__(self, hook_names: Sequence[str], sink: Callable[[str, Tensor], None]) -> None:
        self.wanted = set(hook_names)
        self.remaining = len(self.wanted)
        self.sink = sink

    def wants(self, name: str) -> bool:
        return name in self.wanted

    def __call__(self, name: str, value: Tensor) -> bool:
        if name in self.wanted:
            self.sink(name, value)
            self.remaining -= 1
        return self.remaining == 0


def _layer_norm(x: Tensor, ln, eps: float, name: str, emit: _Emitter) -> tuple[Tensor, bool]:
    """LayerNorm (or LayerNormPre) of ``x``, emitting ``name`` (transformer-lens' ``hook_normalized``,
    taken before the LayerNorm's weight and bias); returns the output and whether to stop."""
    weight = getattr(ln, "w", None)
    bias = getattr(ln, "b", None)
    if weight is None:
        normed = F.layer_norm(x, (x.shape[-1],), eps=eps)
        return normed, emit(name, normed)
    if not emit.wants(name):
        return F.layer_norm(x, (x.shape[-1],), weight, bias, eps), False
    normed = F.layer_norm(x, (x.shape[-1],), eps=eps)
    return normed * weight + bias, emit(name, normed)


def _buffer(workspace: dict[str, Tensor] | None, key: str, shape: tuple[int, int], like: Tensor) -> Tensor | None:
    """A ``shape`` tensor from ``workspace`` (made or remade there as needed); None without one."""
    if workspace is None:
        return None
    buffer = workspace.get(key)
    if buffer is None or buffer.shape != shape or buffer.dtype != like.dtype or buffer.device != like.device:
        buffer = workspace[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buffer


def fused_capture(
    model,
    tokens: Int[Tensor, "batch pos"],
    hook_names: Sequence[str],
    sink: Callable[[str, Tensor], None],
    workspace: dict[str, Tensor] | None = None,
) -> None:
    """Run ``model`` on ``tokens`` just far enough to call ``sink(name, activation)`` at each hook.

    ``activation`` has the shape the transformer-lens hook would give (``[batch, pos, d]``,
    ``[batch, pos, head, d_head]`` for ``attn.hook_z``); the sink must copy what it keeps.
    Runs without gradients. ``workspace``, a dict kept between calls, lets the query/key/
    value projection and the MLP's hidden activations reuse their memory (on a CPU, freshly
    allocated large tensors cost page faults on first touch: 8% of the forward on the
    reference model, measured interleaved in one process).
    Check :func:`fused_unsupported` first: this function assumes the model and hooks qualify.
    """
    cfg = model.cfg
    emit = _Emitter(hook_names, sink)
    act = _ACTIVATIONS[cfg.act_fn]
    batch, pos = tokens.shape
    n_heads, d_head, eps = cfg.n_heads, cfg.d_head, cfg.eps
    scale = 1.0 / float(cfg.attn_scale) if cfg.use_attn_scale else 1.0
    with torch.inference_mode():
        embed = model.embed.W_E[tokens]
        pos_embed = model.pos_embed.W_pos[:pos].unsqueeze(0).expand(batch, -1, -1)
        if emit("hook_embed", embed) | emit("hook_pos_embed", pos_embed):
            return
        resid = embed + pos_embed
        for layer, block in enumerate(model.blocks):
            prefix = f"blocks.{layer}."
            if emit(prefix + "hook_resid_pre", resid):
                return
            attn = block.attn
            normed, done = _layer_norm(resid, block.ln1, eps, prefix + "ln1.hook_normalized", emit)
            if done:
                return
            # one projection for q, k, v: [d_model, 3 * head * d_head], columns q | k | v, head-major
            weight = torch.cat([W.permute(1, 0, 2).reshape(cfg.d_model, -1) for W in (attn.W_Q, attn.W_K, attn.W_V)], 1)
            bias = torch.cat([attn.b_Q.reshape(-1), attn.b_K.reshape(-1), attn.b_V.reshape(-1)])
            rows = (batch * pos, weight.shape[1])
            qkv = torch.addmm(bias, normed.reshape(-1, cfg.d_model), weight, out=_buffer(workspace, "qkv", rows, resid))
            qkv = qkv.view(batch, pos, 3, n_heads, d_head).permute(2, 0, 3, 1, 4)
            z = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True, scale=scale)
            z = z.transpose(1, 2)  # [batch, pos, head, d_head], as hook_z
            if emit(prefix + "attn.hook_z", z):
                return
            attn_out = F.linear(z.reshape(batch, pos, n_heads * d_head), attn.W_O.reshape(-1, cfg.d_model).T, attn.b_O)
            if emit(prefix + "hook_attn_out", attn_out):
                return
            resid = resid + attn_out  # not in place: the sink may hold hook_resid_pre
            if emit(prefix + "hook_resid_mid", resid) or emit(prefix + "hook_mlp_in", resid):
                return
            normed, done = _layer_norm(resid, block.ln2, eps, prefix + "ln2.hook_normalized", emit)
            if done:
                return
            mlp = block.mlp
            hidden = (batch * pos, mlp.W_in.shape[1])
            pre = torch.addmm(mlp.b_in, normed.reshape(-1, cfg.d_model), mlp.W_in, out=_buffer(workspace, "pre", hidden, resid))
            if emit(prefix + "mlp.hook_pre", pre.view(batch, pos, -1)):
                return
            post = act(pre, _buffer(workspace, "post", hidden, resid))
            if emit(prefix + "mlp.hook_post", post.view(batch, pos, -1)):
                return
            mlp_out = torch.addmm(mlp.b_out, post, mlp.W_out).view(batch, pos, -1)
            if emit(prefix + "hook_mlp_out", mlp_out):
                return
            resid = resid + mlp_out
            if emit(prefix + "hook_resid_post", resid):
                return
