"""Neurons, transcoder features or codebook codes: which is the better unit of an MLP layer?

For each MLP layer, :func:`compare_units` measures three kinds of unit on the same tokens:

(a) the layer's **neurons** (``blocks.L.mlp.hook_pre`` / ``hook_post``);
(b) the latents of a **transcoder** of the layer (reads the MLP's input,
    ``blocks.L.ln2.hook_normalized``, or ``blocks.L.hook_resid_mid`` in post-norm blocks;
    predicts ``blocks.L.hook_mlp_out``; :mod:`interp.transcoders`);
(c) the codes of a **codebook** bottleneck at the layer's MLP output
    (``blocks.L.hook_mlp_out``; :mod:`interp.codebooks`).

Three measures, each per layer and kind (positions: every token but the first of each
context, which is BOS; the loss is the model's usual mean next-token loss):

**L0 per token.** Neurons: the mean number of positive pre-activations (GELU passes
positive inputs through roughly linearly, so "active" means positive; for GELU nothing
is exactly zero; in a gated MLP ``hook_pre`` is the gate's, so this counts open gates);
also reported, the mean number of activations above ``UnitsConfig.neuron_threshold`` (in
size for a gated MLP's products, :func:`interp.sparsity.activation_strength`). Transcoder: latents with a nonzero activation. Codebook:
codes active per token (``k`` per codebook).

**Faithfulness.** The cross-entropy loss of the model when the layer's MLP output is
replaced, at every position, by the unit's reconstruction: the transcoder's prediction
(spliced, :func:`interp.transcoders.splice`), the codebook's snapped output (inserted at
that layer only, :func:`interp.codebooks.inserted`), or for neurons the MLP's output when
each token keeps only its ``k`` largest activations (:func:`interp.sparsity.topk_thresholding`),
with ``k`` matched to the transcoder's L0 (rounded; ``UnitsConfig.neuron_k`` overrides it).
Reported as the loss, as the fraction of the zero-ablation gap recovered,
``(CE_zero - CE_unit) / (CE_zero - CE_clean)`` (1 = as good as the MLP, 0 = as bad as
deleting it), and as the fraction of variance of the MLP output left unexplained (FVU).

**Specificity.** For each class (a mask over positions: reference-corpus labels such as
``colour`` or ``year``, and one class per FSM state), every unit gets a threshold so that
it fires on at least ``UnitsConfig.recall`` (0.5) of the class's positions; the unit
with the highest precision at its threshold is the class's best unit
(:func:`interp.units.measures.best_precision_at_recall`). A unit's activation is its
pre-activation for neurons (counted only where positive; in a gated MLP the size of its
gated product, counted where its gate is open), its latent activation for the
transcoder (where nonzero), and its cosine similarity with the input for codes (where
chosen); a unit active on fewer than half the class's positions cannot reach the recall.
Specificity of a kind in a layer = the unweighted mean over classes of the best
precision (a class where no unit reaches the recall counts 0), reported per group of
classes (token classes, FSM states). Classes with fewer than ``UnitsConfig.min_positives``
positions are left out.

All measures use the clean model's activations of one layer at a time; the replacement
affects only that layer, so every layer is compared with the rest of the model intact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.config import check_fraction, check_positive
from interp.errors import ConfigError
from interp.interventions import ablate_mlps, recovered_fraction
from interp.units.measures import best_precision_at_recall
from interp.units.result import ClassRow, UnitRow, UnitsComparison

KINDS: tuple[str, ...] = ("neurons", "transcoder", "codebook")


@dataclass
class UnitsConfig:
    """How the units comparison measures."""

    recall: float = 0.5
    """Specificity: each unit's threshold makes it fire on at least this fraction of a class."""
    neuron_threshold: float = 0.1
    """Neurons: also count activations (after GELU; a gated MLP's products in size) above this value per token."""
    neuron_k: int | None = None
    """Neurons' faithfulness: activations kept per token (None: the transcoder's L0, rounded;
    without a transcoder, the neurons' own mean count of positive pre-activations)."""
    min_positives: int = 8
    """Classes with fewer positions than this are left out of specificity."""
    batch_size: int = 16
    """Contexts per forward pass."""
    progress: bool = True
    """Show a progress bar over layers (notebook bar in Jupyter, text in a terminal)."""

    def __post_init__(self) -> None:
        check_fraction("recall", self.recall, open_low=True)
        if self.neuron_k is not None and self.neuron_k < 1:
            raise ConfigError(f"--neuron-k must be at least 1 (or unset to match the transcoder's L0), got {self.neuron_k}")
        check_positive(min_positives=self.min_positives, batch_size=self.batch_size)


@torch.no_grad()
def compare_units(
    model,
    tokens: Int[Tensor, "n ctx"],
    classes: Mapping[str, Bool[Tensor, "n ctx"]],
    *,
    layers: Sequence[int] | None = None,
    transcoders: Mapping[int, object] | None = None,
    codebooks=None,
    groups: Mapping[str, Sequence[str]] | None = None,
    cfg: UnitsConfig | None = None,
    model_name: str | None = None,
) -> UnitsComparison:
    """Compare neurons, transcoder latents and codebook codes of each MLP layer on ``tokens``.

    Args:
        model: a HookedTransformer.
        tokens: BOS-led contexts; the same tokens serve every measure and every kind.
        classes: name -> mask over ``tokens`` (e.g. :func:`interp.units.reference_classes`).
        layers: layers to compare (default: the layers with a transcoder or a codebook,
            or every layer when neither is given).
        transcoders: layer -> transcoder of that layer's MLP (optional).
        codebooks: a :class:`interp.codebooks.Codebooks` with bottlenecks at
            ``blocks.L.hook_mlp_out`` (optional; other sites are ignored).
        groups: group name -> class names, for the per-group specificity (default: one
            group ``"all"``).
        cfg: how to measure (:class:`UnitsConfig`).
        model_name: recorded in the result (default: ``model.cfg.model_name``).
    """
    from tqdm.auto import tqdm

    from interp.hooks import hook_name
    from interp.transcoders import for_model

    cfg = cfg or UnitsConfig()
    transcoders = dict(for_model(model, transcoders, fold=False)) if transcoders else {}  # checked: each reads its MLP's input
    book_hooks = {} if codebooks is None else {h: b for h, b in codebooks.items()}
    by_layer = {layer: hook_name("mlp_out", layer) for layer in range(model.cfg.n_layers)}
    books = {layer: h for layer, h in by_layer.items() if h in book_hooks}
    if layers is None:
        layers = sorted(set(transcoders) | set(books)) or list(range(model.cfg.n_layers))
    layers = list(layers)
    bad = [layer for layer in [*layers, *transcoders] if not 0 <= layer < model.cfg.n_layers]
    if bad:
        raise ConfigError(f"layers {sorted(set(bad))} do not exist: the model has layers 0..{model.cfg.n_layers - 1}")
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ConfigError(f"tokens must be [n_contexts, ctx_len >= 2], got {tuple(tokens.shape)}")
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    keep = _class_masks(classes, tokens, cfg.min_positives)
    groups = {g: [c for c in names if c in keep] for g, names in (groups or {"all": list(classes)}).items()}
    batches = [tokens[i : i + cfg.batch_size] for i in range(0, tokens.shape[0], cfg.batch_size)]
    ce_clean = _mean_loss(model, batches, contextlib.nullcontext)
    rows: list[UnitRow] = []
    class_rows: list[ClassRow] = []
    ce_zero: dict[int, float] = {}
    for layer in tqdm(layers, desc="units", unit="layer", disable=not cfg.progress):
        clean = _clean_layer(model, batches, layer)
        zero, _ = _replaced(model, batches, layer, clean, lambda layer=layer: _zero_ablated(model, layer))
        ce_zero[layer] = zero
        book = (codebooks, books[layer]) if layer in books else None
        kinds = _layer_units(model, layer, clean, transcoders.get(layer), book, cfg)
        for kind, unit in kinds.items():
            ce, fvu = _replaced(model, batches, layer, clean, unit["replace"])
            spec = {name: best_precision_at_recall(unit["scores"], mask, cfg.recall) for name, mask in keep.items()}
            per_group = {g: _mean([spec[c].precision for c in names]) for g, names in groups.items()}
            rows.append(
                UnitRow(
                    layer=layer, kind=kind, n_units=unit["n_units"], l0=unit["l0"], l0_above=unit.get("l0_above"),
                    kept=unit.get("kept"), ce=ce, recovered=recovered_fraction(zero, ce, ce_clean), fvu=fvu,
                    specificity=_mean([m.precision for m in spec.values()]), specificity_groups=per_group,
                )
            )
            class_rows += [
                ClassRow(layer=layer, kind=kind, cls=name, positives=int(keep[name].sum()), precision=m.precision,
                         unit=m.unit, threshold=m.threshold, recall=m.recall)
                for name, m in spec.items()
            ]
            del unit["scores"]
        del clean
    n_positions = tokens.shape[0] * (tokens.shape[1] - 1)
    return UnitsComparison(
        model=model_name or model.cfg.model_name, n_contexts=tokens.shape[0], ctx_len=tokens.shape[1],
        n_positions=n_positions, ce_clean=ce_clean, ce_zero={str(k): v for k, v in ce_zero.items()},
        base_rates={name: float(mask.float().mean()) for name, mask in keep.items()}, groups=groups,
        rows=rows, classes=class_rows, config=asdict(cfg),
    )


def _class_masks(classes: Mapping[str, Tensor], tokens: Tensor, min_positives: int) -> dict[str, Tensor]:
    """Class masks over the compared positions (position 0 of each context dropped), the rare ones left out."""
    keep = {}
    for name, mask in classes.items():
        if tuple(mask.shape) != tuple(tokens.shape):
            raise ConfigError(f"class {name!r}: mask shape {tuple(mask.shape)} differs from tokens {tuple(tokens.shape)}")
        flat = mask[:, 1:].reshape(-1).bool().cpu()
        if int(flat.sum()) >= min_positives:
            keep[name] = flat
    return keep


def _clean_layer(model, batches: list[Tensor], layer: int) -> dict[str, Tensor]:
    """The clean model's MLP input, pre/post activations and output of one layer (position 0
    dropped), and the residual stream entering the layer's block (every position, per batch)."""
    from interp.hooks import hook_name, mlp_input

    names = {site: hook_name(site, layer) for site in ("pre", "post", "mlp_out", "resid_pre")}
    names["x"] = mlp_input(model, layer)
    parts: dict[str, list[Tensor]] = {site: [] for site in names}
    wanted = set(names.values())
    for batch in batches:
        _, cache = model.run_with_cache(batch, names_filter=lambda n: n in wanted, stop_at_layer=layer + 1)
        for site, name in names.items():
            if site == "resid_pre":
                parts[site].append(cache[name])
            else:
                parts[site].append(cache[name][:, 1:].reshape(-1, cache[name].shape[-1]).float().cpu())
    out = {site: torch.cat(v) for site, v in parts.items() if site != "resid_pre"}
    return {"x": out["x"], "pre": out["pre"], "post": out["post"], "y": out["mlp_out"], "resid": parts["resid_pre"]}


def _layer_units(model, layer: int, clean: dict[str, Tensor], tc, book, cfg: UnitsConfig) -> dict[str, dict]:
    """Per kind: L0, the activation matrix for specificity, and the replacement context."""
    from interp.sparsity import topk_thresholding

    units: dict[str, dict] = {}
    tc_l0 = None
    if tc is not None:
        device = next(model.parameters()).device
        tc = tc.to(device).eval()
        acts = torch.cat([tc.forward_with_activations(x.to(device))[1].cpu() for x in clean["x"].split(4096)])
        tc_l0 = float((acts > 0).sum(-1).float().mean())
        from interp.transcoders import splice

        units["transcoder"] = {
            "n_units": tc.cfg.d_sae, "l0": tc_l0, "scores": acts.masked_fill(acts <= 0, float("-inf")),
            "replace": lambda: splice(model, {layer: tc}),
        }
    from interp.sparsity import activation_strength, signed_activations

    pre = clean["pre"]
    positive = float((pre > 0).sum(-1).float().mean())
    k = cfg.neuron_k or max(1, round(tc_l0 if tc_l0 is not None else positive))
    k = min(k, model.cfg.d_mlp)
    strength = activation_strength(model, clean["post"])
    # a neuron's activation for specificity: its pre-activation; in a gated MLP the size of its gated product
    scores = strength if signed_activations(model) else pre
    units = {
        "neurons": {
            "n_units": model.cfg.d_mlp, "l0": positive, "l0_above": float((strength > cfg.neuron_threshold).sum(-1).float().mean()),
            "kept": k, "scores": scores.masked_fill(pre <= 0, float("-inf")),
            "replace": lambda: topk_thresholding(model, k, [layer]),
        },
        **units,
    }
    if book is not None:
        units["codebook"] = _codebook_unit(model, layer, clean["y"], *book)
    return units


def _codebook_unit(model, layer: int, y: Tensor, codebooks, hook: str) -> dict:
    from interp.codebooks import inserted

    book = codebooks[hook]
    if book.cfg.n_groups != 1 or book.cfg.d != y.shape[-1]:
        raise ConfigError(f"the codebook at layer {layer} does not fit the MLP output ({book.cfg}); train one at mlp_out")
    device = book.codebook.device
    scores = torch.full((y.shape[0], book.n_flat), float("-inf"))
    for start in range(0, y.shape[0], 4096):
        snap = book.eval()(y[start : start + 4096].to(device).unsqueeze(-2))
        codes = book.flat_ids(snap.codes).flatten(1).cpu()
        scores[start : start + codes.shape[0]].scatter_(1, codes, snap.scores.flatten(1).float().cpu())
    return {
        "n_units": book.n_flat, "l0": float(book.cfg.k * book.cfg.n_groups), "scores": scores,
        "replace": lambda: inserted(model, codebooks, only=[hook]),
    }


def _replaced(model, batches: list[Tensor], layer: int, clean: dict, context: Callable[[], AbstractContextManager]) -> tuple[float, float]:
    """Mean CE loss with the layer's MLP output replaced, and the replacement's FVU against the clean output.

    The forward starts at the layer's block from the clean residual stream (the layers before
    it are untouched by the replacement), which gives the same loss as a full forward pass.
    """
    from interp.hooks import hook_name

    captured: list[Tensor] = []

    def capture(act, hook):
        captured.append(act[:, 1:].reshape(-1, act.shape[-1]).float().cpu())

    total, rows = 0.0, 0
    with context(), model.hooks(fwd_hooks=[(hook_name("mlp_out", layer), capture)]):
        for batch, resid in zip(batches, clean["resid"]):
            loss = model(resid, start_at_layer=layer, tokens=batch, return_type="loss")
            total += loss.item() * batch.shape[0]
            rows += batch.shape[0]
    y_hat, y_clean = torch.cat(captured).double(), clean["y"].double()
    err = (y_hat - y_clean).pow(2).sum()
    var = (y_clean - y_clean.mean(0)).pow(2).sum().clamp_min(1e-12)
    return total / rows, float(err / var)


def _mean_loss(model, batches: list[Tensor], context: Callable[[], AbstractContextManager]) -> float:
    total, rows = 0.0, 0
    with context():
        for batch in batches:
            total += model(batch, return_type="loss").item() * batch.shape[0]
            rows += batch.shape[0]
    return total / rows


def _zero_ablated(model, layer: int):
    return ablate_mlps(model, {layer: None})


def _mean(values: Sequence[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


__all__ = ["KINDS", "UnitsConfig", "compare_units"]
