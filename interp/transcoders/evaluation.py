"""How good are trained transcoders? Reconstruction, sparsity, and the model's loss with them spliced in.

Per layer, on held-out tokens:

- **L0**: mean number of active latents per token;
- **FVU**: fraction of the MLP output's variance the transcoder leaves unexplained,
  ``sum ||y - y_hat||^2 / sum ||y - mean(y)||^2``;
- **dead / dense fraction**: latents that never fire on the evaluation tokens / that fire
  on more than ``dense_threshold`` of them;
- **CE loss spliced**: the model's next-token cross-entropy with the transcoder's output
  in place of the MLP's (:func:`splice`), for each layer alone and for all evaluated
  layers at once, against the clean model, the MLP zero-ablated, and the MLP replaced by
  its mean output. *Fraction of CE loss recovered* is
  ``(CE_ablated - CE_spliced) / (CE_ablated - CE_clean)``: 1 is perfect, 0 is no better
  than deleting the MLP.

Also, per layer, a sample of live latents with their top activating contexts and the top
tokens of their decoder direction read through the unembedding (``W_dec[i] @ W_U``).
:class:`EvalResult` saves JSON and renders the HTML report (:mod:`interp.transcoders.html`).

A cross-layer transcoder (:class:`~interp.transcoders.clt.CrossLayerTranscoder`) is evaluated
with the same numbers, read per layer: L0 counts the latents that *read* at the layer, FVU
and the spliced CE are the *output* layer's (its reconstruction from the latents of that
layer and every earlier one), and "all spliced" is the replacement model of Ameisen et al.
(every MLP the CLT covers replaced at once). A latent's decoder direction is its total write,
summed over its output layers. :class:`CrossLayerEval` adds what only a CLT has: the share
of each layer's decoder norm that goes to each output layer. ``EvalConfig.baseline`` evaluates
a second run on the same tokens (e.g. per-layer transcoders at the same total L0) for the
report's side-by-side table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch
from simple_parsing import field as sp_field

from interp.errors import ConfigError, StoreError
from interp.interventions import ablate_mlps, recovered_fraction
from interp.results import Result
from interp.transcoders.clt import CrossLayerTranscoder
from interp.transcoders.data import layer_key, model_layer_hooks
from interp.transcoders.loading import Run


@dataclass
class EvalConfig:
    """Evaluate a trained transcoder run: L0, FVU, dead/dense latents, CE loss recovered; JSON + HTML report."""

    run: str = sp_field(positional=True)
    """Run directory written by `interp transcoder train`."""
    model: str | None = None
    """Model to splice into (default: the run's model)."""
    data: str | None = None
    """Token source: 'reference', a .txt/.jsonl path or a Hugging Face dataset name (default: the data the run was trained on)."""
    dataset: str | None = None
    """Deprecated: the old name of --data."""
    tokens: str = "32k"
    """Evaluation tokens, e.g. 32k."""
    ctx_len: int | None = None
    """Context length (default: the run's)."""
    batch_size: int = 16
    """Contexts per forward pass."""
    seed: int = 12345
    """Seed of the evaluation token stream (different from training's, so tokens are held out)."""
    n_features: int = 24
    """Live latents per layer shown in the report."""
    n_contexts: int = 6
    """Top activating contexts shown per latent."""
    dense_threshold: float = 0.1
    """A latent firing on more than this fraction of tokens counts as dense."""
    out: str | None = None
    """Where to write eval.json and eval.html (default: RUN/eval)."""
    device: str | None = None
    """'cpu' or 'cuda' (default: CUDA when available)."""
    progress: bool = True
    """Show progress bars (notebook bars in Jupyter, text in a terminal)."""
    baseline: str | None = None
    """Another run to evaluate on the same tokens and show beside this one (e.g. per-layer transcoders at the same total L0 as a cross-layer transcoder)."""
    force: bool = False
    """Evaluate transcoders trained on another model (refused by default: their fingerprint differs); eval.json records it."""

    def __post_init__(self) -> None:
        from interp.config import check_fraction, check_positive, parse_positive_count
        from interp.data import data_option

        self.data, self.dataset = data_option(self.data, self.dataset, default=None), None
        parse_positive_count(self.tokens, "--tokens")
        check_positive(ctx_len=self.ctx_len, batch_size=self.batch_size)
        if self.n_features < 0 or self.n_contexts < 0:
            raise ConfigError(f"--n-features and --n-contexts must be at least 0, got {self.n_features} and {self.n_contexts}")
        check_fraction("dense_threshold", self.dense_threshold)


@dataclass
class LayerEval:
    """One layer's numbers."""

    layer: int
    l0: float
    fvu: float
    dead_fraction: float
    dense_fraction: float
    ce_spliced: float
    ce_zero_ablated: float
    ce_mean_ablated: float
    recovered_vs_zero: float
    recovered_vs_mean: float


@dataclass
class FeatureCard:
    """One latent: how often it fires, where it fires most, what it writes."""

    layer: int
    index: int
    frequency: float
    contexts: list[dict]
    """Each: ``tokens`` (the window, each token's text as the tokenizer writes it there: concatenated they
    are the decoded window, see :func:`interp.reports.token_pieces`), ``focus`` (index of the activating
    token), ``value``."""
    decoder_top_tokens: list[tuple[str, float]]

    def __repr__(self) -> str:
        tokens = ", ".join(repr(t) for t, _ in self.decoder_top_tokens[:4])
        return (f"FeatureCard(layer {self.layer}, latent {self.index}: fires on {100 * self.frequency:.3f}% of tokens, "
                f"{len(self.contexts)} contexts, promotes {tokens})")


@dataclass
class CrossLayerEval:
    """What only a cross-layer transcoder has."""

    input_site: str
    """What its latents read at each layer (``resid_mid`` or ``ln2_normalized``)."""
    decoder_share: list[list[float]]
    """``[source][output]``: of the squared decoder norm of the live latents of each layer (row),
    the share that goes to each output layer (column; zero before the source layer), each
    output layer's rows measured in units of its MLP output's variance per token."""


@dataclass
class EvalResult(Result):
    """Everything `interp transcoder eval` measures; ``save``/``load`` JSON, ``to_html`` report."""

    stem: ClassVar[str] = "eval"
    title: ClassVar[str] = "Transcoder evaluation"

    model: str
    n_tokens: int
    ce_clean: float
    layers: list[LayerEval]
    ce_all_spliced: float
    ce_all_zero_ablated: float
    ce_all_mean_ablated: float
    recovered_all_vs_zero: float
    recovered_all_vs_mean: float
    log10_frequencies: dict[str, list[float]]
    """Per layer key: log10 firing frequency of every latent (-10 for never)."""
    features: list[FeatureCard] = field(default_factory=list)
    cross_layer: CrossLayerEval | None = None
    """A cross-layer transcoder's own numbers (None for per-layer transcoders)."""
    baseline: EvalResult | None = None
    """The run named by ``EvalConfig.baseline``, evaluated on the same tokens (no latent cards)."""
    name: str = ""
    """The evaluated run's directory (empty for transcoders passed in memory)."""
    transcoders_forced: dict | None = None
    """Set when transcoders trained on another model were evaluated with ``force``: ``{"forced": True,
    "trained_on": fingerprint, "used_on": fingerprint}``."""

    @property
    def kind(self) -> str:
        """'per-layer' transcoders or a 'cross-layer' transcoder."""
        return "per-layer" if self.cross_layer is None else "cross-layer"

    @property
    def total_l0(self) -> float:
        """Active latents per token summed over layers (a CLT's latents counted once, at the layer they read)."""
        return sum(r.l0 for r in self.layers)

    def summary(self) -> str:
        text = self.table()
        if self.baseline is not None:
            text += "\n\n" + self.comparison_table()
        return text

    def comparison_table(self) -> str:
        """This run against its baseline: total L0, CE with every layer spliced (the replacement
        model), recovered fractions and each layer's FVU."""
        lines = [f"{'run':28s} {'kind':11s} {'total L0':>8s} {'CE all':>8s} {'CE-clean':>8s} {'rec/zero':>8s}  FVU per layer"]
        for r in (self, self.baseline):
            fvus = " ".join(f"{x.fvu:.4f}" for x in r.layers)
            lines.append(f"{(r.name or '(in memory)')[-28:]:28s} {r.kind:11s} {r.total_l0:8.2f} {r.ce_all_spliced:8.4f} "
                         f"{r.ce_all_spliced - r.ce_clean:8.4f} {r.recovered_all_vs_zero:8.3f}  {fvus}")
        return "\n".join(lines)

    def table(self) -> str:
        kind = f" ({self.kind} transcoder, total L0 {self.total_l0:.2f})" if self.kind != "per-layer" else ""
        lines = [f"clean CE {self.ce_clean:.4f} on {self.n_tokens} tokens of {self.model}{kind}",
                 f"{'layer':>5s} {'L0':>7s} {'FVU':>7s} {'dead':>6s} {'dense':>6s} {'CE splice':>9s} {'CE zero':>8s} {'CE mean':>8s} {'rec/zero':>8s} {'rec/mean':>8s}"]
        for r in self.layers:
            lines.append(
                f"{r.layer:5d} {r.l0:7.2f} {r.fvu:7.4f} {r.dead_fraction:6.3f} {r.dense_fraction:6.3f} {r.ce_spliced:9.4f} "
                f"{r.ce_zero_ablated:8.4f} {r.ce_mean_ablated:8.4f} {r.recovered_vs_zero:8.3f} {r.recovered_vs_mean:8.3f}"
            )
        lines.append(
            f"  all {'':7s} {'':7s} {'':6s} {'':6s} {self.ce_all_spliced:9.4f} {self.ce_all_zero_ablated:8.4f} "
            f"{self.ce_all_mean_ablated:8.4f} {self.recovered_all_vs_zero:8.3f} {self.recovered_all_vs_mean:8.3f}"
        )
        return "\n".join(lines)

    def to_html(self) -> str:
        from interp.transcoders.html import render

        return render(self)

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = (f"{self.model}, {len(self.layers)} layer(s), {self.n_tokens:,} tokens: clean CE {self.ce_clean:.4f}, "
                f"all spliced {self.ce_all_spliced:.4f}, recovered {self.recovered_all_vs_zero:.3f} vs zero")
        lines = [f"layer {r.layer}: L0 {r.l0:.2f}  FVU {r.fvu:.4f}  recovered {r.recovered_vs_zero:.3f} vs zero, "
                 f"{r.recovered_vs_mean:.3f} vs mean" for r in self.layers]
        return plain_repr("EvalResult", head, lines)

    def _repr_html_(self) -> str:
        from interp.reports import bar_svg, summary_html
        from interp.transcoders.html import summary_table

        rows = [("model", self.model), ("held-out tokens", self.n_tokens), ("clean CE", self.ce_clean),
                ("CE, all layers spliced", self.ce_all_spliced), ("recovered vs zero-ablation", self.recovered_all_vs_zero),
                ("recovered vs mean-ablation", self.recovered_all_vs_mean)]
        chart = bar_svg([f"L{r.layer}" for r in self.layers] + ["all"],
                        [r.recovered_vs_zero for r in self.layers] + [self.recovered_all_vs_zero],
                        title="fraction of CE loss recovered (vs zero-ablation)")
        return summary_html("Transcoder evaluation", rows, chart, table=summary_table(self),
                            note="to_html() for the full report with plots and latent cards")


@contextlib.contextmanager
def splice(model, transcoders: Run, outputs: list[int] | None = None) -> Iterator[None]:
    """Within the block, each layer's MLP output is replaced by its transcoder's prediction.

    The transcoder reads the MLP input of the same forward pass, so with several layers
    spliced, later transcoders see the inputs produced by earlier spliced layers.
    Hooks are removed when the block ends, even on error.

    A cross-layer transcoder replaces the MLP output of every layer in ``outputs`` (default:
    all its layers; the replacement model) by its reconstruction from the latents of that layer
    and the earlier ones, each computed from its own layer's read hook in the same pass.
    """
    if isinstance(transcoders, CrossLayerTranscoder):
        with _splice_clt(model, transcoders, transcoders.layers if outputs is None else outputs):
            yield
        return
    stash: dict[int, torch.Tensor] = {}
    hooks = []
    for layer, tc in transcoders.items():
        hin, hout = model_layer_hooks(model, layer)

        def read(act, hook, layer=layer):
            stash[layer] = act

        def write(act, hook, layer=layer, tc=tc):
            return tc(stash.pop(layer)).to(act.dtype)

        hooks += [(hin, read), (hout, write)]
    with model.hooks(fwd_hooks=hooks):
        yield


@contextlib.contextmanager
def _splice_clt(model, clt: CrossLayerTranscoder, outputs: list[int]) -> Iterator[None]:
    reads = clt.layers[: clt.index(max(outputs)) + 1] if outputs else []
    acts: dict[int, torch.Tensor] = {}
    inputs: dict[int, torch.Tensor] = {}

    def read(act, hook, layer):
        inputs[layer] = act
        acts[layer] = clt.encode_layer(act, layer)

    def write(act, hook, layer):
        upto = clt.layers[: clt.index(layer) + 1]
        code = torch.stack([acts[source].reshape(-1, clt.d_sae) for source in upto], 1)
        x = inputs[layer].reshape(-1, clt.d_in)
        return (clt.decode_output(code, layer) + clt.skip_layer(x, layer)).reshape(act.shape).to(act.dtype)

    hooks = [(clt.hook_names_in[clt.index(layer)], partial(read, layer=layer)) for layer in reads]
    hooks += [(clt.hook_names_out[clt.index(layer)], partial(write, layer=layer)) for layer in outputs]
    with model.hooks(fwd_hooks=hooks):
        yield


def ablate(model, replacements: dict[int, torch.Tensor | None]):
    """Deprecated name of :func:`interp.interventions.ablate_mlps`."""
    return ablate_mlps(model, replacements)


@torch.no_grad()
def evaluate(run: str | Path | Run, cfg: EvalConfig | None = None, *, model=None, tokens: torch.Tensor | None = None) -> EvalResult:
    """Evaluate a run directory (or ``{layer: transcoder}``, or a cross-layer transcoder) on
    held-out tokens; see the module docstring.

    ``model`` and ``tokens`` (``[n_contexts, ctx_len]``) may be passed directly; otherwise
    they come from ``cfg`` and the run's ``run.json``.
    """
    from interp.config import parse_count
    from interp.models import check_context, check_tokens, default_device
    from interp.transcoders.loading import check_trained_on, for_model, load_run
    from interp.transcoders.training import TrainResult

    in_memory = isinstance(run, (dict, CrossLayerTranscoder))
    cfg = cfg or EvalConfig(run="" if in_memory else str(run))
    device = cfg.device or default_device()
    run_cfg: dict = {}
    if in_memory:
        given = dict(run) if isinstance(run, dict) else run
    else:
        given = load_run(run, device=device)
        run_cfg = TrainResult.load(run).config if (Path(run) / "run.json").is_file() else {}
    model_name = cfg.model or run_cfg.get("model", "reference")
    if model is None:
        from interp.models import load_model

        model = load_model(model_name, device=device)
    if not given:
        raise StoreError("nothing to evaluate: the run has no transcoders")
    transcoders = for_model(model, given, fold=False, cross_layer=True, force=cfg.force)
    transcoders = transcoders.eval() if isinstance(transcoders, CrossLayerTranscoder) else {k: tc.eval() for k, tc in transcoders.items()}
    if tokens is None:
        from interp.data import load_contexts

        ctx_len = cfg.ctx_len or min(run_cfg.get("ctx_len", 128), model.cfg.n_ctx)
        check_context(model, ctx_len)
        n_contexts = max(1, -(-parse_count(cfg.tokens, "tokens") // ctx_len))
        tokens = load_contexts(eval_data(cfg, run_cfg), model.tokenizer, n_contexts, ctx_len, seed=cfg.seed)
    check_tokens(model, tokens, what="the evaluation tokens")
    tokens = tokens.to(device)
    result = _evaluate(model, model_name, transcoders, tokens, cfg, cards=True)
    result.name = "" if in_memory else str(run)
    result.transcoders_forced = check_trained_on(model, transcoders)
    if cfg.baseline is not None:
        other = for_model(model, load_run(cfg.baseline, device=device), fold=False, cross_layer=True, force=cfg.force)
        result.baseline = _evaluate(model, model_name, other, tokens, cfg, cards=False)
        result.baseline.name = cfg.baseline
    return result


def _evaluate(model, model_name: str, transcoders: Run, tokens: torch.Tensor, cfg: EvalConfig, *, cards: bool) -> EvalResult:
    layers = _layers(transcoders)
    stats = _first_pass(model, transcoders, tokens, cfg)
    means = {layer: stats[layer]["y_sum"] / stats[layer]["n"] for layer in layers}
    ce = _ce_passes(model, transcoders, tokens, means, cfg.batch_size, cfg.progress)
    per_layer = []
    freqs = {}
    for layer in layers:
        s = stats[layer]
        variance = s["y_sq"] - s["y_sum"].pow(2).sum() / s["n"]
        freq = s["fired"].double() / s["n"]
        freqs[layer_key(layer)] = torch.where(freq > 0, freq.clamp_min(1e-10).log10(), torch.full_like(freq, -10.0)).tolist()
        per_layer.append(
            LayerEval(
                layer=layer,
                l0=s["l0_sum"] / s["n"],
                fvu=(s["err"] / variance).item(),
                dead_fraction=(s["fired"] == 0).float().mean().item(),
                dense_fraction=(freq > cfg.dense_threshold).float().mean().item(),
                ce_spliced=ce["splice"][layer],
                ce_zero_ablated=ce["zero"][layer],
                ce_mean_ablated=ce["mean"][layer],
                recovered_vs_zero=recovered_fraction(ce["zero"][layer], ce["splice"][layer], ce["clean"]),
                recovered_vs_mean=recovered_fraction(ce["mean"][layer], ce["splice"][layer], ce["clean"]),
            )
        )
    clt = transcoders if isinstance(transcoders, CrossLayerTranscoder) else None
    folded = transcoders.folded() if clt is not None else {layer: tc.folded() for layer, tc in transcoders.items()}
    return EvalResult(
        model=model_name,
        n_tokens=tokens.numel(),
        ce_clean=ce["clean"],
        layers=per_layer,
        ce_all_spliced=ce["splice_all"],
        ce_all_zero_ablated=ce["zero_all"],
        ce_all_mean_ablated=ce["mean_all"],
        recovered_all_vs_zero=recovered_fraction(ce["zero_all"], ce["splice_all"], ce["clean"]),
        recovered_all_vs_mean=recovered_fraction(ce["mean_all"], ce["splice_all"], ce["clean"]),
        log10_frequencies=freqs,
        features=_feature_cards(model, folded, tokens, stats, cfg) if cards else [],
        cross_layer=None if clt is None else _cross_layer_eval(folded, stats),
    )


# --- the two kinds of run, behind the few operations evaluation needs -----------------------


def _layers(transcoders: Run) -> list[int]:
    return list(transcoders.layers) if isinstance(transcoders, CrossLayerTranscoder) else sorted(transcoders)


def _hooks(model, transcoders: Run) -> list[str]:
    if isinstance(transcoders, CrossLayerTranscoder):
        return list(dict.fromkeys(transcoders.hook_names_in + transcoders.hook_names_out))
    return [h for layer in sorted(transcoders) for h in model_layer_hooks(model, layer)]


def _predictions(model, transcoders: Run, cache, rows: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(layer, y, y_hat, latent activations)`` per layer from one batch's clean activations."""
    if isinstance(transcoders, CrossLayerTranscoder):
        clt = transcoders
        x = torch.stack([cache[h].reshape(rows, -1) for h in clt.hook_names_in], 1)
        y = torch.stack([cache[h].reshape(rows, -1) for h in clt.hook_names_out], 1)
        y_hat, acts = clt.forward_with_activations(x)
        for i, layer in enumerate(clt.layers):
            yield layer, y[:, i], y_hat[:, i], acts[:, i]
        return
    for layer, tc in transcoders.items():
        hin, hout = model_layer_hooks(model, layer)
        y_hat, acts = tc.forward_with_activations(cache[hin].reshape(rows, -1))
        yield layer, cache[hout].reshape(rows, -1), y_hat, acts


def _directions(folded: Run, layer: int, latents: torch.Tensor) -> torch.Tensor:
    """What each latent of folded transcoders writes: a CLT latent's total write over its output layers."""
    if isinstance(folded, CrossLayerTranscoder):
        return folded.total_write(layer, latents)
    return folded[layer].W_dec[latents]


def _cross_layer_eval(folded: CrossLayerTranscoder, stats: dict) -> CrossLayerEval:
    # Each output layer's decoder rows in units of that layer's MLP output (its variance per
    # token), so a layer whose MLP writes large vectors does not take the shares by scale alone.
    variance = torch.stack([(s["y_sq"] - s["y_sum"].pow(2).sum() / s["n"]) / s["n"] for s in stats.values()]).float()
    shares = []
    for i, layer in enumerate(folded.layers):
        live = (stats[layer]["fired"] > 0).nonzero().flatten()
        if len(live) == 0:
            shares.append([0.0] * folded.n_layers)
            continue
        sq = folded.decoder_vectors(layer, live).pow(2).sum(-1).sum(0).cpu() / variance[i:].clamp_min(1e-30)
        shares.append([0.0] * i + (sq / sq.sum().clamp_min(1e-30)).tolist())
    return CrossLayerEval(input_site=folded.cfg.input_site, decoder_share=shares)


def eval_data(cfg: EvalConfig, run_cfg: dict) -> str:
    """The data an evaluation reads: ``--data``, else what the run trained on (run.json's
    ``data``; ``dataset`` in runs written before it was renamed), else the reference corpus."""
    if cfg.data is not None:
        return cfg.data
    if "data" in run_cfg and run_cfg["data"] is None:
        raise ConfigError(
            "the run does not record its data (it was trained from activations passed in), "
            "so pass --data with text like the training text"
        )
    return run_cfg.get("data") or run_cfg.get("dataset") or "reference"


def _first_pass(model, transcoders: Run, tokens: torch.Tensor, cfg: EvalConfig) -> dict:
    """Clean activations through the transcoders: FVU and L0 sums, firing counts, top contexts."""
    from interp.cache.source import stop_layer

    names = _hooks(model, transcoders)
    stop = stop_layer(model, names)  # no block past the last MLP read, no unembedding
    stats = {}
    m = cfg.n_contexts
    for layer in _layers(transcoders):
        tc = transcoders if isinstance(transcoders, CrossLayerTranscoder) else transcoders[layer]
        d_sae, d_out = tc.d_sae, tc.d_out
        stats[layer] = {
            "n": 0, "l0_sum": 0.0, "err": torch.zeros((), dtype=torch.float64), "y_sq": torch.zeros((), dtype=torch.float64),
            "y_sum": torch.zeros(d_out, dtype=torch.float64, device=tokens.device),
            "fired": torch.zeros(d_sae, dtype=torch.long, device=tokens.device),
            "top_val": torch.full((m, d_sae), -1.0, device=tokens.device),
            "top_idx": torch.zeros((m, d_sae), dtype=torch.long, device=tokens.device),
        }
    offset = 0
    for start in _bar(range(0, tokens.shape[0], cfg.batch_size), cfg.progress, "eval: statistics"):
        batch = tokens[start : start + cfg.batch_size]
        _, cache = model.run_with_cache(batch, names_filter=lambda name: name in names, stop_at_layer=stop)
        rows = batch.numel()
        for layer, y, y_hat, acts in _predictions(model, transcoders, cache, rows):
            s = stats[layer]
            s["n"] += rows
            s["err"] += (y - y_hat).double().pow(2).sum().cpu()
            s["y_sq"] += y.double().pow(2).sum().cpu()
            s["y_sum"] += y.double().sum(0)
            # per latent, along contiguous memory: how often it fired, and its top m of the batch,
            # merged with its top m so far (the top m of every token seen)
            latents = acts.T.contiguous()
            fired = (latents > 0).sum(1, dtype=torch.int32)
            s["l0_sum"] += int(fired.sum())
            s["fired"] += fired
            batch_top = latents.topk(min(m, rows), dim=1)
            values = torch.cat([s["top_val"], batch_top.values.T])
            index = torch.cat([s["top_idx"], offset + batch_top.indices.T])
            best = values.topk(min(m, values.shape[0]), dim=0)
            s["top_val"], s["top_idx"] = best.values, index.gather(0, best.indices)
        offset += rows
    for s in stats.values():
        s["y_sum"] = s["y_sum"].cpu()
    return stats


def _bar(batches: range, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False)


def _ce_passes(model, transcoders: Run, tokens, means, batch_size: int, progress: bool = False) -> dict:
    """Mean next-token CE over ``tokens``: clean, and with each layer's MLP output spliced,
    zero-ablated and mean-ablated, alone and all at once.

    An intervention at layer L leaves the residual stream entering block L as in the clean
    pass, so it runs from there (``start_at_layer``) on the clean residual cached in the clean
    forward, instead of from the tokens: per batch one full forward, plus three forwards from
    each layer and three from the first one, where 3 x layers + 4 full forwards ran before. The
    numbers are those of full forwards (the same operations on the same inputs). A cross-layer
    transcoder's output at layer L reads every earlier layer it covers, so its splices run from
    its first layer.
    """
    from interp.hooks import hook_name

    sums: dict = {"clean": 0.0, "splice": {}, "zero": {}, "mean": {}, "splice_all": 0.0, "zero_all": 0.0, "mean_all": 0.0}
    layers = _layers(transcoders)
    clt = isinstance(transcoders, CrossLayerTranscoder)
    for key in ("splice", "zero", "mean"):
        sums[key] = {layer: 0.0 for layer in layers}
    n_batches = 0
    mean_vectors = {layer: means[layer].float().to(tokens.device) for layer in layers}
    first = min(layers)
    entries = {layer: hook_name("resid_pre", layer) for layer in layers}
    cached = set(entries.values())
    for start in _bar(range(0, tokens.shape[0], batch_size), progress, "eval: CE losses"):
        batch = tokens[start : start + batch_size]
        weight = batch.shape[0]
        n_batches += weight
        loss, cache = model.run_with_cache(batch, return_type="loss", names_filter=lambda name: name in cached)
        sums["clean"] += weight * loss.item()
        # what the forward derives from the tokens besides the residual (shortformer positions, padding mask)
        _, _, positions, mask = model.input_to_embed(batch)
        ce_from = partial(_loss_from, model, {layer: cache[name] for layer, name in entries.items()}, batch, positions, mask)
        for layer in layers:
            with splice(model, transcoders, [layer]) if clt else splice(model, {layer: transcoders[layer]}):
                sums["splice"][layer] += weight * ce_from(first if clt else layer)
            with ablate_mlps(model, {layer: None}):
                sums["zero"][layer] += weight * ce_from(layer)
            with ablate_mlps(model, {layer: mean_vectors[layer]}):
                sums["mean"][layer] += weight * ce_from(layer)
        with splice(model, transcoders):
            sums["splice_all"] += weight * ce_from(first)
        with ablate_mlps(model, {layer: None for layer in layers}):
            sums["zero_all"] += weight * ce_from(first)
        with ablate_mlps(model, mean_vectors):
            sums["mean_all"] += weight * ce_from(first)
    scale = lambda v: {k: x / n_batches for k, x in v.items()} if isinstance(v, dict) else v / n_batches  # noqa: E731
    return {k: scale(v) for k, v in sums.items()}


def _loss_from(model, residuals: dict, tokens, positions, mask, layer: int) -> float:
    """The model's next-token loss on ``tokens`` run from block ``layer`` on ``residuals[layer]``,
    the residual stream entering it (``positions`` and ``mask`` as the full forward makes them)."""
    return model(residuals[layer], start_at_layer=layer, tokens=tokens, return_type="loss",
                 shortformer_pos_embed=positions, attention_mask=mask).item()


def _feature_cards(model, folded: Run, tokens, stats, cfg: EvalConfig) -> list[FeatureCard]:
    cards = []
    flat = tokens.reshape(-1).cpu()
    ctx_len = tokens.shape[1]
    from interp.reports import token_pieces

    tokenizer = model.tokenizer
    to_str = tokenizer.convert_ids_to_tokens if tokenizer is not None else (lambda ids: [str(i) for i in ids])
    generator = torch.Generator().manual_seed(cfg.seed)
    W_U = model.W_U.detach()
    for layer in _layers(folded):
        s = stats[layer]
        alive = (s["fired"] > 0).nonzero().flatten().cpu()
        if len(alive) == 0:
            continue
        chosen = alive[torch.randperm(len(alive), generator=generator)[: cfg.n_features]].sort().values
        directions = _directions(folded, layer, chosen)
        logits = directions @ W_U.to(directions.device)
        top_tokens = logits.topk(min(8, logits.shape[1]), dim=1)
        for row, index in enumerate(chosen.tolist()):
            contexts = []
            for value, where in zip(s["top_val"][:, index].tolist(), s["top_idx"][:, index].tolist()):
                if value <= 0:
                    continue
                seq_start = (where // ctx_len) * ctx_len
                lo = max(seq_start, where - 12)
                window = flat[lo : where + 4 if where + 4 <= seq_start + ctx_len else seq_start + ctx_len].tolist()
                contexts.append({"tokens": token_pieces(tokenizer, window), "focus": where - lo, "value": value})
            decoder = [(tok, val) for tok, val in zip(to_str(top_tokens.indices[row].tolist()), top_tokens.values[row].tolist())]
            cards.append(FeatureCard(layer, index, s["fired"][index].item() / s["n"], contexts, decoder))
    return cards


def run(cfg: EvalConfig) -> EvalResult:
    """What ``interp transcoder eval`` runs: :func:`evaluate` the run directory ``cfg.run``."""
    return evaluate(cfg.run, cfg)


def output_dir(cfg: EvalConfig) -> Path:
    """Where ``interp transcoder eval`` writes ``eval.json`` and ``eval.html``: ``--out``, or RUN/eval."""
    return Path(cfg.out) if cfg.out else Path(cfg.run) / "eval"


def run_eval(cfg: EvalConfig) -> tuple[EvalResult, Path]:
    """Deprecated: :func:`run`, then ``result.write(output_dir(cfg))``."""
    from interp._deprecation import warn

    warn("run_eval", "interp.transcoders.evaluation.run(cfg) and result.write(out)")
    result = run(cfg)
    out = output_dir(cfg)
    result.write(out)
    return result, out
