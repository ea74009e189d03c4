"""``interp codebook ...``: train codebooks, search codes for a property, write a code report."""

from __future__ import annotations

import json
from dataclasses import dataclass

from interp.codebooks.training import CodebookTrainConfig
from interp.commands import command
from interp.errors import ConfigError


@command("codebook", "train", help="train codebook bottlenecks on the LM loss", config=CodebookTrainConfig)
def _train(cfg: CodebookTrainConfig) -> int:
    from interp.codebooks.training import train

    result = train(cfg)
    print(f"wrote {result.out} ({result.steps} steps, {result.seconds:.0f} s)")
    print(result.summary())
    return 0


@dataclass
class CodebookReportConfig:
    """Write a JSON + HTML report of the codes of a trained run."""

    run: str
    """Directory written by `interp codebook train`."""
    out: str | None = None
    """Report path without extension (default RUN/report): writes .json and .html."""
    n_contexts: int = 64
    """Reference-corpus contexts to record codes on."""
    top_codes: int = 50
    """Codes shown per bottleneck (most frequent first)."""
    seed: int = 1
    """Seed of the corpus sample."""
    device: str | None = None
    """'cpu' or 'cuda'."""

    def __post_init__(self) -> None:
        if self.n_contexts < 1 or self.top_codes < 1:
            raise ConfigError("n_contexts and top_codes must be >= 1")


def _record(run: str, n_contexts: int, seed: int, device: str | None):
    from interp.codebooks.search import collect_codes, labelled_contexts
    from interp.codebooks.training import load_trained

    model, books = load_trained(run, device=device)
    data = labelled_contexts(model.tokenizer, n_contexts, model.cfg.n_ctx, seed=seed)
    return model, books, data, collect_codes(model, books, data.tokens)


@command("codebook", "report", help="JSON + HTML report of a run's codes", config=CodebookReportConfig)
def _report(cfg: CodebookReportConfig) -> int:
    from pathlib import Path

    from interp.codebooks.report import build_report

    model, books, _, record = _record(cfg.run, cfg.n_contexts, cfg.seed, cfg.device)
    report = build_report(model, books, record, title=f"Codes of {cfg.run}", top_codes=cfg.top_codes)
    base = Path(cfg.out) if cfg.out else Path(cfg.run) / "report"
    report.save(base.with_suffix(".json"))
    report.write_html(base.with_suffix(".html"))
    print(f"wrote {base.with_suffix('.json')} and {base.with_suffix('.html')}")
    return 0


@dataclass
class CodebookSearchConfig:
    """Rank a run's codes by how well they predict a property (precision, recall, F1)."""

    run: str
    """Directory written by `interp codebook train`."""
    regex: str | None = None
    """Property: a regex searched in the text of the last `window` tokens (anchor with $)."""
    tokens: list[str] | None = None
    """Property: the position's token is one of these vocabulary entries."""
    label: str | None = None
    """Property: the reference corpus labels the position with this label (e.g. fsm_state)."""
    window: int = 8
    """Tokens of context the regex sees."""
    top: int = 5
    """Codes listed per bottleneck."""
    n_contexts: int = 64
    """Reference-corpus contexts to search."""
    seed: int = 1
    """Seed of the corpus sample."""
    json: bool = False
    """Print JSON."""
    device: str | None = None
    """'cpu' or 'cuda'."""

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.regex, self.tokens, self.label)) != 1:
            raise ConfigError("give exactly one property: --regex, --tokens or --label")


@command("codebook", "search", help="codes that best match a property", config=CodebookSearchConfig)
def _search(cfg: CodebookSearchConfig) -> int:
    from dataclasses import asdict

    from interp.codebooks.search import match_property, property_mask

    model, books, data, record = _record(cfg.run, cfg.n_contexts, cfg.seed, cfg.device)
    if cfg.label is not None:
        mask = property_mask(data.tokens, labels=data.labels, label=cfg.label)
    else:
        mask = property_mask(data.tokens, model.tokenizer, regex=cfg.regex, token_class=cfg.tokens, window=cfg.window)
    matches = {hook: match_property(record, hook, mask, top=cfg.top) for hook in books.hooks}
    if cfg.json:
        print(json.dumps({h: [asdict(m) for m in ms] for h, ms in matches.items()}, indent=2))
        return 0
    print(f"property holds at {int(mask.sum())} of {mask.numel()} positions")
    for hook, ms in matches.items():
        print(hook)
        for m in ms:
            print(f"  code {m.code:5d}  precision {m.precision:.3f}  recall {m.recall:.3f}  F1 {m.f1:.3f}  fired {m.fired}")
    return 0
