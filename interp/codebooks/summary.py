"""What a run's codes look like: the most frequent codes of every bottleneck, where they fire, what they write.

:func:`summarize_codes` computes, for the most frequent codes of every bottleneck, their
frequency, top contexts and top tokens through the unembedding. :class:`CodebookSummary`
holds them: a :class:`~interp.results.Result` (JSON ``save``/``load``, ``summary()`` text,
``to_html()`` rendered by :mod:`interp.codebooks.html`). :func:`run` is what
``interp codebook report`` runs: load a trained run, record its codes on reference-corpus
contexts, summarise them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from interp._deprecation import warn
from interp.codebooks.insert import Codebooks
from interp.codebooks.search import CodeRecord, code_top_tokens, ranked_codes, record_run
from interp.config import check_ctx_len, check_positive
from interp.results import Result


@dataclass
class CodeSummary:
    """One code: how often it fires, where, and what it writes."""

    code: int
    frequency: float
    top_contexts: list[dict]
    top_tokens: list[tuple[str, float]]


@dataclass
class SiteSummary:
    """One bottleneck's codes."""

    hook: str
    n_codes: int
    active_codes: int
    frequencies: list[float]
    """Frequency of every code (flat id order)."""
    codes: list[CodeSummary]


@dataclass
class CodebookSummary(Result):
    """Codes of every bottleneck, plus free-form extras (e.g. property matches)."""

    stem: ClassVar[str] = "codes"

    n_positions: int
    sites: list[SiteSummary]
    title: str = "Codebook codes"
    """The page's title (and the first line of :meth:`summary`)."""
    extra: dict = field(default_factory=dict)
    codebooks_forced: dict | None = None
    """Set when ``--force`` used the codebooks on another model than they were trained on (both fingerprints)."""

    def to_html(self) -> str:
        """One self-contained page: a frequency chart and a table of codes per bottleneck."""
        from interp.codebooks.html import render_summary

        return render_summary(self)

    def summary(self, codes_shown: int = 5) -> str:
        lines = [f"{self.title}: {self.n_positions:,} positions"]
        for site in self.sites:
            lines.append(f"  {site.hook}: {site.active_codes}/{site.n_codes} codes active")
            for c in site.codes[:codes_shown]:
                tokens = ", ".join(repr(t) for t, _ in c.top_tokens[:4])
                lines.append(f"    code {c.code:5d}  frequency {c.frequency:.4f}  promotes {tokens}")
        return "\n".join(lines)

    def headline(self) -> list[tuple[str, object]]:
        return [("positions", self.n_positions)] + [(s.hook, f"{s.active_codes}/{s.n_codes} codes active") for s in self.sites]

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        sites = [f"{s.hook}: {s.active_codes}/{s.n_codes} codes active" for s in self.sites]
        head = f"{self.title!r}, {len(self.sites)} bottleneck(s), {self.n_positions:,} positions"
        return plain_repr("CodebookSummary", head, sites)

    def _repr_html_(self) -> str:
        from interp.reports import line_svg, summary_html

        chart = None
        if self.sites:
            top = self.sites[0]
            freq = sorted(top.frequencies, reverse=True)[: max(1, top.active_codes)]
            chart = line_svg(freq, title=f"{top.hook}: code frequency by rank", x_label="rank", log_y=True)
        return summary_html(self.title, self.headline(), chart or None,
                            note="to_html() for the full page; write(directory) saves codes.json and codes.html")


CodebookReport = CodebookSummary
"""Former name of :class:`CodebookSummary`."""


def summarize_codes(
    model,
    codebooks: Codebooks,
    record: CodeRecord,
    title: str = "Codebook codes",
    top_codes: int = 50,
    n_contexts: int = 5,
    n_tokens: int = 8,
    window: int = 8,
    extra: dict | None = None,
) -> CodebookSummary:
    """Summarise the ``top_codes`` most frequent codes of every bottleneck in ``record``:
    ``n_contexts`` top contexts (``window`` tokens before each) and ``n_tokens`` top tokens per code."""
    sites = []
    for hook in codebooks.hooks:
        freq = record.frequency(hook)
        codes = [
            CodeSummary(
                code=c,
                frequency=float(freq[c]),
                top_contexts=record.top_contexts(hook, c, model.tokenizer, n=n_contexts, window=window),
                top_tokens=code_top_tokens(model, codebooks, hook, c, n=n_tokens),
            )
            for c in ranked_codes(record, hook, top_codes)
        ]
        sites.append(
            SiteSummary(
                hook=hook, n_codes=record.n_flat[hook], active_codes=int((freq > 0).sum()),
                frequencies=freq.tolist(), codes=codes,
            )
        )
    return CodebookSummary(title=title, n_positions=int(record.tokens.numel()), sites=sites, extra=extra or {})


def build_report(*args, **kwargs) -> CodebookSummary:
    """Deprecated: :func:`summarize_codes` (same arguments)."""
    warn("build_report", "interp.codebooks.summarize_codes")
    return summarize_codes(*args, **kwargs)


@dataclass
class CodebookSummaryConfig:
    """Summarise the codes of a trained run (frequency, top contexts, top tokens per code): codes.json + codes.html."""

    run: str
    """Directory written by `interp codebook train`."""
    out: str | None = None
    """Directory to write codes.json and codes.html into (default: RUN)."""
    n_contexts: int = 64
    """Contexts of --data to record codes on."""
    top_codes: int = 50
    """Codes shown per bottleneck (most frequent first)."""
    data: str = "reference"
    """Token source: 'reference' (as plain text for other tokenizers), a .txt/.jsonl path, or a Hugging Face dataset name."""
    seed: int = 1
    """Seed of the token sample."""
    ctx_len: int | None = None
    """Tokens per context (default: the length the codebooks were trained on; at most the model's context)."""
    device: str | None = None
    """'cpu' or 'cuda'."""
    force: bool = False
    """Use the run's codebooks even when the model loaded under its recorded name is another model (its fingerprint differs)."""

    def __post_init__(self) -> None:
        check_positive(n_contexts=self.n_contexts, top_codes=self.top_codes)
        check_ctx_len(self.ctx_len)


def run(cfg: CodebookSummaryConfig) -> CodebookSummary:
    """What ``interp codebook report`` runs: record the run's codes on contexts of ``cfg.data`` and summarise them."""
    model, books, _, record = record_run(cfg.run, cfg.n_contexts, seed=cfg.seed, device=cfg.device, data=cfg.data,
                                         force=cfg.force, ctx_len=cfg.ctx_len)
    result = summarize_codes(model, books, record, title=f"Codes of {cfg.run}", top_codes=cfg.top_codes)
    result.codebooks_forced = books.forced
    return result


__all__ = [
    "CodeSummary", "CodebookReport", "CodebookSummary", "CodebookSummaryConfig", "SiteSummary", "build_report", "run",
    "summarize_codes",
]
