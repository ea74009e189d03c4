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
            raise UnknownHookError(name, known)
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
