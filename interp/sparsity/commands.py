"""``interp sparsity``: activation density, top-k thresholding and core neurons of every MLP.

The command builds its config, calls the public functions a notebook would call
(:func:`interp.sparsity.measure`, :func:`interp.sparsity.topk_curve`,
:func:`interp.sparsity.core_similarity`) and writes JSON plus a self-contained HTML
report into ``--out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from interp.commands import command
from interp.errors import ConfigError
from interp.io import atomic_write_text


def _ints(text: str | None) -> list[int] | None:
    if text is None or text.strip() == "":
        return None
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError as err:
        raise ConfigError(f"ks must be integers separated by commas, e.g. '512,128,32'; got {text!r}") from err


@dataclass
class SparsityConfig:
    """Measure MLP activation sparsity, top-k thresholding and CoreInfer core neurons."""

    model: str = "reference"
    """'reference', 'gpt2', or a local checkpoint directory."""
    data: str = "reference"
    """Token source: 'reference', a .txt/.jsonl path, or a Hugging Face dataset name."""
    n_batches: int = 8
    """Batches to measure densities on."""
    batch_size: int = 16
    """Contexts per batch."""
    ctx_len: int = 128
    """Tokens per context (BOS first)."""
    threshold: float = 0.1
    """Count activations above this as 'above threshold'."""
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
    """Output directory: sparsity.json, topk.json, core.json, report.html."""

    def __post_init__(self) -> None:
        if self.n_batches < 1 or self.batch_size < 1 or self.ctx_len < 2:
            raise ConfigError("n_batches and batch_size must be >= 1 and ctx_len >= 2")


@command("sparsity", help="activation density, top-k thresholding and core neurons of every MLP", config=SparsityConfig)
def _sparsity(cfg: SparsityConfig) -> int:
    from interp.data import token_batches
    from interp.models import load_model
    from interp.sparsity import core_similarity, measure, related_sentences, sparsity_report, topk_curve

    model = load_model(cfg.model, device="cpu")
    if model.tokenizer is None:
        raise ConfigError("the model has no tokenizer, so tokens cannot be built from data")
    batches = token_batches(cfg.data, model.tokenizer, ctx_len=cfg.ctx_len, batch_size=cfg.batch_size, seed=cfg.seed)
    result = measure(model, batches, threshold=cfg.threshold, deft_eps=cfg.deft_eps, max_batches=cfg.n_batches,
                     progress=cfg.progress)
    ks = _ints(cfg.ks)
    tokens = next(iter(token_batches(cfg.data, model.tokenizer, ctx_len=cfg.ctx_len, batch_size=cfg.batch_size, seed=cfg.seed + 1)))
    curve = topk_curve(model, tokens, ks, progress=cfg.progress)
    core = core_similarity(model, related_sentences(seed=cfg.seed), alpha=cfg.alpha, beta=cfg.beta, progress=cfg.progress)
    out = Path(cfg.out)
    result.save(out / "sparsity.json")
    curve.save(out / "topk.json")
    core.save(out / "core.json")
    atomic_write_text(out / "report.html", sparsity_report(result, curve, core))
    print(result.table())
    print(curve.table())
    print(core.table())
    return 0
