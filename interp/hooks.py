"""Named sites where interp reads and writes a transformer-lens model.

A *site* is a kind of place in every block (the residual stream entering it, the MLP's
output, ...); with a layer it names one hook point of the model. Site names are
TransformerLens' own: ``hook_name(site, L)`` is ``transformer_lens.utils.get_act_name(site, L)``
for every site below, with the same meaning (tested against ``get_act_name`` itself), and
TransformerLens' aliases (``attn``, ``key``, ``mlp_post``, ...) are accepted too. The one
site TransformerLens spells with a qualifier, ``get_act_name("normalized", L, "ln2")``, is
``ln2_normalized`` here (``ln1_normalized``, ``ln1_scale``, ``ln2_scale`` likewise).
Wherever interp takes a site it also takes a hook name: a full one (``blocks.3.hook_mlp_out``,
``hook_embed``, ``ln_final.hook_normalized``), or one relative to the block
(``hook_mlp_out``, ``ln2.hook_normalized``, ``attn.hook_z``) for every chosen layer. Every
name is checked against the model's own ``hook_dict`` before use, with an error that lists
close matches. docs/interop.md#transformerlens-hook-names has this table too.

==============  =====================================  ===============================  ==========================================
site            ``get_act_name``                       hook point                       what it holds
==============  =====================================  ===============================  ==========================================
resid_pre       ``("resid_pre", L)``                   blocks.L.hook_resid_pre          residual stream entering block L
ln1_normalized  ``("normalized", L, "ln1")``           blocks.L.ln1.hook_normalized     attention's input, normalised (before
                                                                                        ln1's weight, which loading folds away)
attn_in *       ``("attn_in", L)``                     blocks.L.hook_attn_in            resid_pre once per head, before ln1
q, k, v         ``("q", L)``, ...                      blocks.L.attn.hook_q, ...        queries, keys, values per head
attn_scores     ``("attn_scores", L)``                 blocks.L.attn.hook_attn_scores   attention logits [head, query, key]
pattern         ``("pattern", L)``                     blocks.L.attn.hook_pattern       attention pattern [head, query, key]
z               ``("z", L)``                           blocks.L.attn.hook_z             per-head attention output, before W_O
result *        ``("result", L)``                      blocks.L.attn.hook_result        per-head attention output, after W_O
attn_out        ``("attn_out", L)``                    blocks.L.hook_attn_out           attention output added to the residual
resid_mid       ``("resid_mid", L)``                   blocks.L.hook_resid_mid          residual after attention, before the MLP
mlp_in *        ``("mlp_in", L)``                      blocks.L.hook_mlp_in             residual entering the MLP, before ln2
ln2_normalized  ``("normalized", L, "ln2")``           blocks.L.ln2.hook_normalized     the MLP's input, normalised (what a
                                                                                        transcoder reads)
pre             ``("pre", L)``                         blocks.L.mlp.hook_pre            neuron pre-activations
pre_linear      ``("pre_linear", L)``                  blocks.L.mlp.hook_pre_linear     a gated MLP's linear branch
post            ``("post", L)``                        blocks.L.mlp.hook_post           neuron activations
mlp_out         ``("mlp_out", L)``                     blocks.L.hook_mlp_out            MLP output added to the residual
resid_post      ``("resid_post", L)``                  blocks.L.hook_resid_post         residual leaving block L
==============  =====================================  ===============================  ==========================================

Also: ``q_input``, ``k_input``, ``v_input`` * (the residual feeding each of them),
``rot_q``, ``rot_k`` (rotary models), ``mid`` (SoLU, before its LayerNorm), ``ln1_scale``,
``ln2_scale``. interp's older names stay accepted where they meant what TransformerLens
means: ``attn_z`` (``z``), ``attn_pattern`` (``pattern``), ``mlp_pre`` (``pre``),
``mlp_post`` (``post``). interp's old ``mlp_in`` meant ``ln2_normalized``; it now means
TransformerLens' ``hook_mlp_in``, and asking for it on a model that does not compute it says
so, naming both.

\\* TransformerLens computes these hook points only when a config flag is on
(``use_attn_in``, ``use_attn_result``, ``use_split_qkv_input``, ``use_hook_mlp_in``;
:func:`gate`). Caching turns the flag on for the run when you ask for such a hook
(:func:`opened`) and restores it after. The bare site ``mlp_in`` is the exception: on a model
with ``use_hook_mlp_in`` off it is refused with both choices, so that a config written for
interp's old ``mlp_in`` never silently caches another hook.

Per architecture: ``attn_out`` and ``mlp_out`` always hold what the sublayer adds to the
residual stream, after any norm on its output (Gemma 2's ``ln1_post`` / ``ln2_post``;
:func:`output_norm`). Parallel blocks (GPT-NeoX/Pythia, GPT-J) have no ``resid_mid``
(asking for it says so), their ``mlp_in`` is ``resid_pre`` and their ``ln2_normalized``
normalises ``resid_pre``. In a gated MLP (Llama, Gemma, Qwen, Mistral) ``pre`` is the gate's
pre-activation ``x @ W_gate``, ``pre_linear`` the linear branch ``x @ W_in``, and ``post`` the
gated product ``act(x @ W_gate) * (x @ W_in)``: the activation that multiplies each neuron's
row of ``W_out``. Post-norm blocks (OLMo 2/3) differ: there ``ln1``/``ln2`` normalise the
sublayer's *output*, so ``ln2_normalized`` is not the MLP's input; the MLP reads
``resid_mid`` itself, and :func:`mlp_input` (what transcoders read) says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, get_args

from interp.errors import ConfigError, UnknownHookError

Site = Literal[
    "resid_pre",
    "ln1_scale",
    "ln1_normalized",
    "attn_in",
    "q_input",
    "k_input",
    "v_input",
    "q",
    "k",
    "v",
    "rot_q",
    "rot_k",
    "attn_scores",
    "pattern",
    "z",
    "result",
    "attn_out",
    "resid_mid",
    "mlp_in",
    "ln2_scale",
    "ln2_normalized",
    "pre",
    "pre_linear",
    "mid",
    "post",
    "mlp_out",
    "resid_post",
]
SITES: tuple[str, ...] = get_args(Site)
"""Every site, in the order a block computes them."""

_RELATIVE: dict[str, str] = {
    **{site: f"hook_{site}" for site in ("resid_pre", "attn_in", "q_input", "k_input", "v_input", "attn_out",
                                         "resid_mid", "mlp_in", "mlp_out", "resid_post")},
    **{site: f"attn.hook_{site}" for site in ("q", "k", "v", "rot_q", "rot_k", "attn_scores", "pattern", "z", "result")},
    **{site: f"mlp.hook_{site}" for site in ("pre", "pre_linear", "mid", "post")},
    **{f"{ln}_{kind}": f"{ln}.hook_{kind}" for ln in ("ln1", "ln2") for kind in ("scale", "normalized")},
}
"""Each site's hook name inside block L (``blocks.L.`` + this)."""

ALIASES: dict[str, str] = {
    "attn_z": "z",
    "attn_pattern": "pattern",
    "mlp_pre": "pre",
    "mlp_post": "post",
    "mlp_mid": "mid",
    "attn": "pattern",
    "attn_logits": "attn_scores",
    "key": "k",
    "query": "q",
    "value": "v",
}
"""Other names of sites: interp's older ones (``attn_z``, ``attn_pattern``, ``mlp_pre``,
``mlp_post``) and TransformerLens' own aliases (``get_act_name``'s ``act_name_alias``)."""

_GATES: dict[str, str] = {
    "hook_attn_in": "use_attn_in",
    "hook_q_input": "use_split_qkv_input",
    "hook_k_input": "use_split_qkv_input",
    "hook_v_input": "use_split_qkv_input",
    "attn.hook_result": "use_attn_result",
    "hook_mlp_in": "use_hook_mlp_in",
}
"""Hook points (inside a block) that TransformerLens computes only when a config flag is on."""

MlpInputSite = Literal["ln2_normalized", "resid_mid"]


def canonical(site: str) -> str:
    """``site`` as one of :data:`SITES` (an alias is translated); unknown names list close matches."""
    site = ALIASES.get(site, site)
    if site not in _RELATIVE:
        raise UnknownHookError(str(site), [*SITES, *ALIASES], what="site")
    return site


def _is_hook_name(name: str) -> bool:
    """True for a hook name (TransformerLens' rule in ``get_act_name``: it has a dot or starts with ``hook_``)."""
    return "." in name or name.startswith("hook_")


def hook_name(site: str, layer: int) -> str:
    """The transformer-lens hook name of ``site`` in block ``layer``.

    ``site`` is one of :data:`SITES`, an alias (:data:`ALIASES`), or a hook name relative to
    the block (``hook_mlp_out``, ``ln2.hook_normalized``).
    """
    if layer < 0:
        raise ConfigError(f"layer must be >= 0, got {layer}")
    if _is_hook_name(site):
        if site.startswith("blocks."):
            raise ConfigError(f"{site!r} is a full hook name, which already says its layer; give a site or a hook name inside the block")
        return f"blocks.{layer}.{site}"
    return f"blocks.{layer}.{_RELATIVE[canonical(site)]}"


def site_of(name: str) -> tuple[str, int] | None:
    """``(site, layer)`` of a full hook name of a site (``blocks.3.attn.hook_z`` -> ``("z", 3)``), else None."""
    inside = _inside(name)
    if inside is None:
        return None
    for site, relative in _RELATIVE.items():
        if relative == inside:
            return site, int(name.split(".")[1])
    return None


def site_named(entry: str) -> str | None:
    """The site an entry of a ``--sites`` option names: a site or alias, or a hook name of a site,
    relative to the block (``attn.hook_z``) or full (``blocks.3.attn.hook_z``); None for a hook
    name that is no site's (``hook_embed``). An unknown word raises, listing close matches."""
    if not _is_hook_name(entry):
        return canonical(entry)
    found = site_of(entry if entry.startswith("blocks.") else f"blocks.0.{entry}")
    return None if found is None else found[0]


def _inside(name: str) -> str | None:
    """A block hook name without its ``blocks.L.`` (``blocks.3.attn.hook_z`` -> ``attn.hook_z``), else None."""
    parts = name.split(".", 2)
    return parts[2] if len(parts) == 3 and layer_of(name) is not None else None


def gate(name: str) -> str | None:
    """The TransformerLens config flag without which hook point ``name`` never fires, or None.

    TransformerLens creates ``hook_mlp_in``, ``hook_attn_in``, ``hook_q_input`` (and ``k``,
    ``v``) and ``attn.hook_result`` in every block but computes them only with
    ``use_hook_mlp_in``, ``use_attn_in``, ``use_split_qkv_input`` and ``use_attn_result``.
    """
    inside = _inside(name)
    return None if inside is None else _GATES.get(inside)


def validate(model, names: Iterable[str]) -> list[str]:
    """Check every hook name against ``model.hook_dict``; return them as a list."""
    names = list(names)
    for name in names:
        if name not in model.hook_dict:
            raise _unknown(model, name, model.hook_dict)
    return names


def _unknown(model, name: str, known: Iterable[str]) -> UnknownHookError:
    """The error for a hook ``name`` the model lacks (close matches among ``known``)."""
    error = UnknownHookError(name, known)
    if name.endswith("hook_resid_mid") and getattr(model.cfg, "parallel_attn_mlp", False):
        error.args = (f"the model has no {name!r}: its attention and MLP run in parallel (cfg.parallel_attn_mlp), "
                      "both reading resid_pre, so no residual stream lies between them; use resid_pre or resid_post",)
    return error


def _layers(model, layers: int | Sequence[int] | None) -> list[int]:
    n_layers = model.cfg.n_layers
    if layers is None:
        return list(range(n_layers))
    layers = [layers] if isinstance(layers, int) else list(layers)
    for layer in layers:
        if not 0 <= layer < n_layers:
            raise ConfigError(f"layer {layer} is out of range: the model has layers 0..{n_layers - 1}")
    return layers


def resolve(model, site: str, layers: int | Sequence[int] | None = None) -> list[str]:
    """Validated hook names of ``site`` for ``layers`` (all layers when None).

    ``site`` is a site or alias, a hook name relative to the block (``hook_mlp_out``), or a
    full hook name (``blocks.3.hook_mlp_out``, ``hook_embed``: itself, whatever ``layers``).
    """
    if _is_hook_name(site) and (site in model.hook_dict or site.startswith("blocks.")):
        return validate(model, [site])
    chosen = _layers(model, layers)
    if _is_hook_name(site):
        names = [hook_name(site, layer) for layer in chosen]
        if any(name not in model.hook_dict for name in names):
            inside = sorted({_inside(name) for name in model.hook_dict} - {None})
            raise _unknown(model, site, [*inside, *(n for n in model.hook_dict if layer_of(n) is None)])
        return names
    site = canonical(site)
    if site == "mlp_in" and not getattr(model.cfg, "use_hook_mlp_in", False):
        raise ConfigError(
            "site 'mlp_in' is TransformerLens' blocks.L.hook_mlp_in, the residual stream entering the MLP before ln2, "
            "which this model computes only with use_hook_mlp_in: ask for it as hook_mlp_in to turn that on, or for "
            "ln2_normalized, the MLP's normalised input (what interp called mlp_in before)"
        )
    return validate(model, [hook_name(site, layer) for layer in chosen])


def expand(model, entries: Iterable[str], layers: int | Sequence[int] | None = None) -> list[str]:
    """Hook names of several :func:`resolve` entries (sites, aliases, relative or full hook
    names) over ``layers``, in order, without repeats: what a ``--sites`` option takes."""
    names = [name for entry in entries for name in resolve(model, entry, layers)]
    return list(dict.fromkeys(names))


@contextlib.contextmanager
def opened(model, names: Iterable[str]) -> Iterator[None]:
    """Within the block, the hook points ``names`` that need a TransformerLens flag
    (:func:`gate`) fire: the flag is turned on with TransformerLens' own setter
    (``set_use_hook_mlp_in`` ...) and restored when the block ends, on error too."""
    flags = sorted({flag for flag in map(gate, names) if flag is not None and not getattr(model.cfg, flag, False)})
    done: list[str] = []
    try:
        for flag in flags:
            try:
                getattr(model, f"set_{flag}")(True)
            except AssertionError as err:  # TransformerLens refuses, e.g. use_attn_in with grouped-query attention
                raise ConfigError(f"this model cannot compute the hooks that need {flag}: {err}") from err
            done.append(flag)
        yield
    finally:
        for flag in reversed(done):
            getattr(model, f"set_{flag}")(False)


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
    """Every site's hook names in ``model`` that fire as it is configured (the ones that need a
    flag only when it is on; :func:`gated_sites` lists the others), for display (``interp info``)."""
    out = {}
    for site in SITES:
        names = [hook_name(site, layer) for layer in range(model.cfg.n_layers)]
        out[site] = [n for n in names if n in model.hook_dict and _fires(model, n)]
    return out


def _fires(model, name: str) -> bool:
    flag = gate(name)
    return flag is None or bool(getattr(model.cfg, flag, False))


def gated_sites(model) -> dict[str, str]:
    """Sites the model has but computes only with a flag that is off: site -> the flag."""
    out = {}
    for site in SITES:
        name = hook_name(site, 0)
        if name in model.hook_dict and not _fires(model, name):
            out[site] = gate(name)
    return out


# --- what an architecture puts around its sublayers -------------------------------------

Sublayer = Literal["attn", "mlp"]


def is_post_norm(architecture: str | None) -> bool:
    """True for post-norm architectures (OLMo 2/3: TransformerLens' ``POST_NORM_ARCHITECTURES``),
    whose ``ln1``/``ln2`` normalise the sublayer's output instead of its input."""
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    return architecture in POST_NORM_ARCHITECTURES


def _post_norm(model) -> bool:
    return is_post_norm(getattr(model.cfg, "original_architecture", None))


def mlp_input_site(architecture: str | None) -> MlpInputSite:
    """The site holding what an MLP reads (a transcoder's input) in models of ``architecture``
    (``cfg.original_architecture``): ``ln2_normalized``, or ``resid_mid`` in post-norm blocks,
    whose MLP reads the residual stream itself (``ln2`` normalises its output there)."""
    return "resid_mid" if is_post_norm(architecture) else "ln2_normalized"


def mlp_input(model, layer: int) -> str:
    """The hook name of what block ``layer``'s MLP reads (see :func:`mlp_input_site`).

    In a block without an ``ln2`` norm (``normalization_type=None``) there is no
    ``ln2.hook_normalized``: the MLP reads the residual stream itself, ``hook_resid_mid``
    (``hook_resid_pre`` where attention and MLP run in parallel)."""
    site = mlp_input_site(getattr(model.cfg, "original_architecture", None))
    if site == "ln2_normalized" and not hasattr(getattr(model.blocks[layer], "ln2", None), "hook_normalized"):
        site = "resid_pre" if getattr(model.cfg, "parallel_attn_mlp", False) else "resid_mid"
    return hook_name(site, layer)


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
