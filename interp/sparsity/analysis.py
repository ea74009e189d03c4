"""The whole sparsity analysis in one call: densities, the top-k curve and core similarity.

:func:`run` is what ``interp sparsity`` runs and what a notebook calls with a
:class:`SparsityConfig`: it loads the model and the token source the config names,
:func:`~interp.sparsity.measure`\\ s densities on ``n_batches`` batches, draws the
:func:`~interp.sparsity.topk_curve` on one more batch (another seed, so other tokens) and
compares the :func:`~interp.sparsity.core_similarity` of related and unrelated sentences.
It returns a :class:`SparsityAnalysis`, whose :meth:`~SparsityAnalysis.write` saves the
three results (``sparsity.json``, ``topk.json``, ``core.json``) and one page with all of
them (``sparsity.html``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from interp.config import check_ctx_len, check_fraction, check_positive, parse_ints, parse_layers
from interp.errors import ConfigError
from interp.results import Result
from interp.sparsity.coreinfer import CoreSimilarity, core_similarity, related_sentences
from interp.sparsity.density import SparsityResult, measure
from interp.sparsity.topk import TopKCurve, topk_curve


@dataclass
class SparsityConfig:
    """Measure MLP activation sparsity, top-k thresholding and CoreInfer core neurons."""

    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    data: str = "reference"
    """Token source: 'reference' (as plain text for other tokenizers), a .txt/.jsonl path, or a Hugging Face dataset name."""
    layers: str | None = None
    """Layers to measure: 'all', '0,2' or '0-3' (default: all)."""
    n_batches: int = 8
    """Batches to measure densities on."""
    batch_size: int = 16
    """Contexts per batch."""
    ctx_len: int = 128
    """Tokens per context (BOS first)."""
    threshold: float = 0.1
    """Count activations above this as 'above threshold' (their size, for gated MLPs)."""
    deft_eps: float = 1e-2
    """Epsilon of the DEFT density a^2 / (a^2 + eps)."""
    ks: str | None = None
    """Top-k values for the thresholding curve, e.g. '512,128,32' (default: d_mlp / 2^i)."""
    alpha: float = 0.4
    """CoreInfer token-wise fraction of positive activations kept."""
    beta: float = 0.2
    """CoreInfer sentence-wise fraction of most frequent core neurons kept."""
    seed: int = 0
    """Seed of the token stream and of the related sentences."""
    progress: bool = True
    """Show progress bars (notebook bars in Jupyter, text in a terminal; --noprogress turns them off)."""
    out: str = "runs/sparsity"
    """Output directory: sparsity.json, topk.json, core.json, sparsity.html."""

    def __post_init__(self) -> None:
        check_positive(n_batches=self.n_batches, batch_size=self.batch_size)
        check_ctx_len(self.ctx_len)
        if not self.deft_eps > 0:
            raise ConfigError(f"--deft-eps must be positive, got {self.deft_eps}")
        check_fraction("alpha", self.alpha, open_low=True)
        check_fraction("beta", self.beta, open_low=True)
        if any(k < 1 for k in self.k_values() or ()):
            raise ConfigError(f"--ks must all be at least 1, got {self.ks!r}")

    def k_values(self) -> list[int] | None:
        """``ks`` as a list of ints (None: the default ks)."""
        return parse_ints(self.ks, "--ks")


@dataclass
class SparsityAnalysis(Result):
    """What ``interp sparsity`` computes: densities per layer, the top-k curve and core similarity."""

    stem: ClassVar[str] = "sparsity"
    title: ClassVar[str] = "MLP activation sparsity"

    density: SparsityResult
    topk: TopKCurve
    core: CoreSimilarity

    def summary(self) -> str:
        return "\n\n".join(part.summary() for part in (self.density, self.topk, self.core))

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = f"model {self.density.model_name!r}: densities, top-k curve and core neurons"
        lines = [repr(part).splitlines()[0] for part in (self.density, self.topk, self.core)]
        return plain_repr("SparsityAnalysis", head, lines)

    def to_html(self) -> str:
        from interp.sparsity.html import sparsity_page

        return sparsity_page(self.density, self.topk, self.core)

    def _repr_html_(self) -> str:
        return "".join(part._repr_html_() for part in (self.density, self.topk, self.core))

    def write_data(self, directory: Path) -> dict[str, Path]:
        """``sparsity.json``, ``topk.json``, ``core.json`` (the three results); :meth:`write` adds
        ``sparsity.html`` (one page with all three)."""
        return {part.stem: part.save(directory / f"{part.stem}.json") for part in (self.density, self.topk, self.core)}

    @classmethod
    def load(cls, path: str | Path) -> SparsityAnalysis:
        """Read what :meth:`write` wrote into a directory, or a JSON file written by :meth:`save`."""
        path = Path(path)
        if path.is_dir():
            return cls(SparsityResult.load(path), TopKCurve.load(path), CoreSimilarity.load(path))
        return super().load(path)


def run(cfg: SparsityConfig) -> SparsityAnalysis:
    """What ``interp sparsity`` runs: densities on ``cfg.n_batches`` batches of ``cfg.data``, the
    top-k curve on one more batch, and the core similarity of the reference corpus's related sentences."""
    from interp.data import load_contexts, token_batches
    from interp.models import check_context, load_model

    model = load_model(cfg.model, device="cpu")
    check_context(model, cfg.ctx_len)
    if model.tokenizer is None:
        raise ConfigError("the model has no tokenizer, so tokens cannot be built from data")
    layers = parse_layers(cfg.layers, model.cfg.n_layers)
    ks = cfg.k_values()
    if ks and max(ks) > model.cfg.d_mlp:
        raise ConfigError(f"--ks must be at most d_mlp={model.cfg.d_mlp}, got {cfg.ks!r}")

    batches = token_batches(cfg.data, model.tokenizer, cfg.ctx_len, cfg.batch_size, seed=cfg.seed, n_batches=cfg.n_batches)
    density = measure(model, batches, layers, threshold=cfg.threshold, deft_eps=cfg.deft_eps,
                      max_batches=cfg.n_batches, progress=cfg.progress)
    heldout = load_contexts(cfg.data, model.tokenizer, cfg.batch_size, cfg.ctx_len, seed=cfg.seed + 1)
    curve = topk_curve(model, heldout, ks, layers, progress=cfg.progress)
    core = core_similarity(model, related_sentences(seed=cfg.seed), layers, alpha=cfg.alpha, beta=cfg.beta,
                           progress=cfg.progress)
    return SparsityAnalysis(density, curve, core)
