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
:class:`EvalResult` saves JSON and renders the HTML report (:mod:`interp.transcoders.report`).
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
from interp.transcoders.base import Transcoder
from interp.transcoders.data import layer_hooks, layer_key


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

    def __post_init__(self) -> None:
        from interp.data import data_option

        self.data, self.dataset = data_option(self.data, self.dataset, default=None), None


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
    """Each: ``tokens`` (strings, the window), ``focus`` (index of the activating token), ``value``."""
    decoder_top_tokens: list[tuple[str, float]]

    def __repr__(self) -> str:
        tokens = ", ".join(repr(t) for t, _ in self.decoder_top_tokens[:4])
        return (f"FeatureCard(layer {self.layer}, latent {self.index}: fires on {100 * self.frequency:.3f}% of tokens, "
                f"{len(self.contexts)} contexts, promotes {tokens})")


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

    def summary(self) -> str:
        return self.table()

    def table(self) -> str:
        lines = [f"clean CE {self.ce_clean:.4f} on {self.n_tokens} tokens of {self.model}",
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
def splice(model, transcoders: dict[int, Transcoder]) -> Iterator[None]:
    """Within the block, each layer's MLP output is replaced by its transcoder's prediction.

    The transcoder reads the MLP input of the same forward pass, so with several layers
    spliced, later transcoders see the inputs produced by earlier spliced layers.
    Hooks are removed when the block ends, even on error.
    """
    stash: dict[int, torch.Tensor] = {}
    hooks = []
    for layer, tc in transcoders.items():
        hin, hout = layer_hooks(layer)

        def read(act, hook, layer=layer):
            stash[layer] = act

        def write(act, hook, layer=layer, tc=tc):
            return tc(stash.pop(layer)).to(act.dtype)

        hooks += [(hin, read), (hout, write)]
    with model.hooks(fwd_hooks=hooks):
        yield


def ablate(model, replacements: dict[int, torch.Tensor | None]):
    """Deprecated name of :func:`interp.interventions.ablate_mlps`."""
    return ablate_mlps(model, replacements)


@torch.no_grad()
def evaluate(run: str | Path | dict[int, Transcoder], cfg: EvalConfig | None = None, *, model=None, tokens: torch.Tensor | None = None) -> EvalResult:
    """Evaluate a run directory (or ``{layer: transcoder}``) on held-out tokens; see the module docstring.

    ``model`` and ``tokens`` (``[n_contexts, ctx_len]``) may be passed directly; otherwise
    they come from ``cfg`` and the run's ``run.json``.
    """
    from interp.config import parse_count
    from interp.models import default_device
    from interp.transcoders.loading import for_model, load_run
    from interp.transcoders.training import TrainResult

    cfg = cfg or EvalConfig(run=str(run) if not isinstance(run, dict) else "")
    device = cfg.device or default_device()
    run_cfg: dict = {}
    if isinstance(run, dict):
        given = dict(run)
    else:
        given = load_run(run, device=device)
        run_cfg = TrainResult.load(run).config
    model_name = cfg.model or run_cfg.get("model", "reference")
    if model is None:
        from interp.models import load_model

        model = load_model(model_name, device=device)
    if not given:
        raise StoreError("nothing to evaluate: the run has no transcoders")
    transcoders = {layer: tc.eval() for layer, tc in for_model(model, given, fold=False).items()}
    if tokens is None:
        from interp.data import load_contexts

        ctx_len = cfg.ctx_len or min(run_cfg.get("ctx_len", 128), model.cfg.n_ctx)
        n_contexts = max(1, -(-parse_count(cfg.tokens, "tokens") // ctx_len))
        tokens = load_contexts(eval_data(cfg, run_cfg), model.tokenizer, n_contexts, ctx_len, seed=cfg.seed)
    tokens = tokens.to(device)
    layers = sorted(transcoders)
    stats = _first_pass(model, transcoders, tokens, cfg)
    means = {layer: stats[layer]["y_sum"] / stats[layer]["n"] for layer in layers}
    ce = _ce_passes(model, transcoders, tokens, means, cfg.batch_size, cfg.progress)
    n = tokens.numel()
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
    return EvalResult(
        model=model_name,
        n_tokens=n,
        ce_clean=ce["clean"],
        layers=per_layer,
        ce_all_spliced=ce["splice_all"],
        ce_all_zero_ablated=ce["zero_all"],
        ce_all_mean_ablated=ce["mean_all"],
        recovered_all_vs_zero=recovered_fraction(ce["zero_all"], ce["splice_all"], ce["clean"]),
        recovered_all_vs_mean=recovered_fraction(ce["mean_all"], ce["splice_all"], ce["clean"]),
        log10_frequencies=freqs,
        features=_feature_cards(model, transcoders, tokens, stats, cfg),
    )


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


def _first_pass(model, transcoders: dict[int, Transcoder], tokens: torch.Tensor, cfg: EvalConfig) -> dict:
    """Clean activations through each transcoder: FVU and L0 sums, firing counts, top contexts."""
    from interp.cache.source import stop_layer

    names = [h for layer in transcoders for h in layer_hooks(layer)]
    stop = stop_layer(model, names)  # no block past the last MLP read, no unembedding
    stats = {}
    m = cfg.n_contexts
    for layer, tc in transcoders.items():
        d_sae, d_out = tc.cfg.d_sae, tc.cfg.d_out
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
        for layer, tc in transcoders.items():
            hin, hout = layer_hooks(layer)
            x = cache[hin].reshape(rows, -1)
            y = cache[hout].reshape(rows, -1)
            y_hat, acts = tc.forward_with_activations(x)
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


def _ce_passes(model, transcoders, tokens, means, batch_size: int, progress: bool = False) -> dict:
    """Mean next-token CE over ``tokens``: clean, and with each layer's MLP output spliced,
    zero-ablated and mean-ablated, alone and all at once.

    An intervention at layer L leaves the residual stream entering block L as in the clean
    pass, so it runs from there (``start_at_layer``) on the clean residual cached in the clean
    forward, instead of from the tokens: per batch one full forward, plus three forwards from
    each layer and three from the first one, where 3 x layers + 4 full forwards ran before. The
    numbers are those of full forwards (the same operations on the same inputs).
    """
    from interp.hooks import hook_name

    sums: dict = {"clean": 0.0, "splice": {}, "zero": {}, "mean": {}, "splice_all": 0.0, "zero_all": 0.0, "mean_all": 0.0}
    layers = list(transcoders)
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
            with splice(model, {layer: transcoders[layer]}):
                sums["splice"][layer] += weight * ce_from(layer)
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


def _feature_cards(model, transcoders, tokens, stats, cfg: EvalConfig) -> list[FeatureCard]:
    cards = []
    flat = tokens.reshape(-1).cpu()
    ctx_len = tokens.shape[1]
    to_str = model.tokenizer.convert_ids_to_tokens if model.tokenizer is not None else (lambda ids: [str(i) for i in ids])
    generator = torch.Generator().manual_seed(cfg.seed)
    W_U = model.W_U.detach()
    for layer, tc in transcoders.items():
        s = stats[layer]
        alive = (s["fired"] > 0).nonzero().flatten().cpu()
        if len(alive) == 0:
            continue
        chosen = alive[torch.randperm(len(alive), generator=generator)[: cfg.n_features]].sort().values
        logits = tc.folded().W_dec[chosen] @ W_U.to(tc.W_dec.device)
        top_tokens = logits.topk(min(8, logits.shape[1]), dim=1)
        for row, index in enumerate(chosen.tolist()):
            contexts = []
            for value, where in zip(s["top_val"][:, index].tolist(), s["top_idx"][:, index].tolist()):
                if value <= 0:
                    continue
                seq_start = (where // ctx_len) * ctx_len
                lo = max(seq_start, where - 12)
                window = flat[lo : where + 4 if where + 4 <= seq_start + ctx_len else seq_start + ctx_len].tolist()
                contexts.append({"tokens": to_str(window), "focus": where - lo, "value": value})
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
    import warnings

    warnings.warn("run_eval is deprecated: use interp.transcoders.evaluation.run(cfg) and result.write(out)", DeprecationWarning, stacklevel=2)
    result = run(cfg)
    out = output_dir(cfg)
    result.write(out)
    return result, out
