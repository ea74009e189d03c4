"""Named sites where interp reads and writes a transformer-lens model.

A *site* is a kind of place in every block (the MLP input, the MLP output, ...); with a
layer it names one hook point of the model. Sites are explicit ``(site, layer)`` pairs,
never parsed from shorthand strings, and every name is checked against the model's own
``hook_dict`` before use, with an error that lists close matches.

=============  ===============================  ===========================================
site           hook point                       what it is
=============  ===============================  ===========================================
resid_pre      blocks.L.hook_resid_pre          residual stream entering block L
attn_z         blocks.L.attn.hook_z             per-head attention output, before W_O
attn_pattern   blocks.L.attn.hook_pattern       attention pattern [head, query, key]
attn_out       blocks.L.hook_attn_out           attention output added to the residual
resid_mid      blocks.L.hook_resid_mid          residual after attention, before the MLP
mlp_in         blocks.L.ln2.hook_normalized     the MLP's input (after its LayerNorm)
mlp_pre        blocks.L.mlp.hook_pre            neuron pre-activations
mlp_post       blocks.L.mlp.hook_post           neuron activations
mlp_out        blocks.L.hook_mlp_out            MLP output added to the residual
resid_post     blocks.L.hook_resid_post         residual leaving block L
=============  ===============================  ===========================================

Per architecture: ``attn_out`` and ``mlp_out`` always hold what the sublayer adds to the
residual stream, after any norm on its output (Gemma 2's ``ln1_post`` / ``ln2_post``;
:func:`output_norm`). Parallel blocks (GPT-NeoX/Pythia, GPT-J) have no ``resid_mid``
(asking for it says so), and their ``mlp_in`` normalises ``resid_pre``. In a gated MLP
(Llama, Gemma, Qwen, Mistral) ``mlp_pre`` is the gate's pre-activation ``x @ W_gate``,
``blocks.L.mlp.hook_pre_linear`` the linear branch ``x @ W_in``, and ``mlp_post`` the gated
product ``act(x @ W_gate) * (x @ W_in)``: the activation that multiplies each neuron's row
of ``W_out``. Post-norm blocks (OLMo 2/3) differ: there ``ln2.hook_normalized`` normalises
the MLP's *output*, so ``mlp_in`` is not the MLP's input (which is ``resid_mid``), and
nothing that reads ``mlp_in`` (transcoders, the units comparison) is right on them yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, get_args

from interp.errors import ConfigError, UnknownHookError

Site = Literal[
    "resid_pre",
    "attn_z",
    "attn_pattern",
    "attn_out",
    "resid_mid",
    "mlp_in",
    "mlp_pre",
    "mlp_post",
    "mlp_out",
    "resid_post",
]
SITES: tuple[str, ...] = get_args(Site)

_TEMPLATES: dict[str, str] = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "attn_z": "blocks.{layer}.attn.hook_z",
    "attn_pattern": "blocks.{layer}.attn.hook_pattern",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "mlp_in": "blocks.{layer}.ln2.hook_normalized",
    "mlp_pre": "blocks.{layer}.mlp.hook_pre",
    "mlp_post": "blocks.{layer}.mlp.hook_post",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "resid_post": "blocks.{layer}.hook_resid_post",
}


def hook_name(site: str, layer: int) -> str:
    """The transformer-lens hook name of ``site`` (one of ``SITES``) in block ``layer``."""
    if site not in _TEMPLATES:
        raise UnknownHookError(str(site), SITES, what="site")
    if layer < 0:
        raise ConfigError(f"layer must be >= 0, got {layer}")
    return _TEMPLATES[site].format(layer=layer)


def validate(model, names: Iterable[str]) -> list[str]:
    """Check every hook name against ``model.hook_dict``; return them as a list."""
    names = list(names)
    known = model.hook_dict
    for name in names:
        if name not in known:
            error = UnknownHookError(name, known)
            if name.endswith(".hook_resid_mid") and getattr(model.cfg, "parallel_attn_mlp", False):
                message = (f"the model has no {name!r}: its attention and MLP run in parallel (cfg.parallel_attn_mlp), "
                           "both reading resid_pre, so no residual stream lies between them; use resid_pre or resid_post")
                error.args = (message,)
            raise error
    return names


def resolve(model, site: str, layers: int | Sequence[int] | None = None) -> list[str]:
    """Validated hook names of ``site`` for ``layers`` (all layers when None)."""
    n_layers = model.cfg.n_layers
    if layers is None:
        layers = range(n_layers)
    elif isinstance(layers, int):
        layers = [layers]
    for layer in layers:
        if not 0 <= layer < n_layers:
            raise ConfigError(f"layer {layer} is out of range: the model has layers 0..{n_layers - 1}")
    return validate(model, [hook_name(site, layer) for layer in layers])


def layer_of(name: str) -> int | None:
    """The block index of a hook name (``blocks.L....``), or None for a non-block hook."""
    parts = name.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        return int(parts[1])
    return None


def last_layer(names: Iterable[str]) -> int | None:
    """The deepest block any of ``names`` lives in, or None if one is outside the blocks."""
    layers = [layer_of(n) for n in names]
    if not layers or any(layer is None for layer in layers):
        return None
    return max(layers)  # type: ignore[arg-type]


def all_sites(model) -> dict[str, list[str]]:
    """Every site's validated hook names in ``model``, for display (``interp info``)."""
    out = {}
    for site in SITES:
        names = [hook_name(site, layer) for layer in range(model.cfg.n_layers)]
        out[site] = [n for n in names if n in model.hook_dict]
    return out


# --- what an architecture puts around its sublayers -------------------------------------

Sublayer = Literal["attn", "mlp"]


def _post_norm(model) -> bool:
    """True for post-norm blocks (OLMo 2/3), whose ``ln1``/``ln2`` normalise the sublayer's output."""
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    return model.cfg.original_architecture in POST_NORM_ARCHITECTURES


def input_norm(model, layer: int, sublayer: Sublayer):
    """The norm a sublayer reads the residual stream through (``ln1``/``ln2``), or None when it
    reads the residual itself (no normalisation, or post-norm blocks as OLMo 2's)."""
    block = model.blocks[layer]
    norm = getattr(block, "ln1" if sublayer == "attn" else "ln2", None)
    return None if norm is None or _post_norm(model) else norm


def output_norm(model, layer: int, sublayer: Sublayer):
    """The norm a sublayer's output passes through before it is added to the residual stream
    (and before ``hook_attn_out``/``hook_mlp_out``): Gemma 2's ``ln1_post``/``ln2_post``,
    post-norm OLMo 2's ``ln1``/``ln2``; None for pre-norm and parallel blocks."""
    block = model.blocks[layer]
    if getattr(model.cfg, "use_normalization_before_and_after", False):
        return getattr(block, "ln1_post" if sublayer == "attn" else "ln2_post")
    if _post_norm(model):
        return getattr(block, "ln1" if sublayer == "attn" else "ln2")
    return None


def write_directions(model, layer: int, sublayer: Sublayer, vectors):
    """Rows of ``vectors`` (in the sublayer's output space, e.g. rows of ``W_out``) as the
    residual-stream directions they write, through the sublayer's :func:`output_norm`.

    A norm ``(v - mean(v)) / scale(v) * w + b`` (``mean`` only for a LayerNorm) divides by one
    positive number per position, shared by every row, and adds a bias shared by every row;
    what depends on the row is linear: centring and the weight ``w``, which this applies.
    Without an output norm the rows are returned unchanged.
    """
    norm = output_norm(model, layer, sublayer)
    if norm is None:
        return vectors
    from transformer_lens.components import LayerNorm, LayerNormPre

    if isinstance(norm, (LayerNorm, LayerNormPre)):
        vectors = vectors - vectors.mean(dim=-1, keepdim=True)
    weight = getattr(norm, "w", None)
    return vectors if weight is None else vectors * weight.detach().to(vectors.dtype)
