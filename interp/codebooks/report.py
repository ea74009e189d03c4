"""Code reports: JSON data, rendered separately into one self-contained HTML page.

:func:`build_report` computes, for the most frequent codes of every bottleneck, their
frequency, top contexts and top tokens through the unembedding. :class:`CodebookReport`
is plain data with ``save``/``load`` (JSON) and ``to_html`` (plotly, inlined, no CDN; the
page is built with :mod:`interp.reports`).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from interp.codebooks.insert import Codebooks
from interp.codebooks.search import CodeRecord, code_top_tokens, ranked_codes
from interp.reports import Raw, figure_html, line_svg, page, plain_repr, section, summary_html, table


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
class CodebookReport:
    """Codes of every bottleneck, plus free-form extras (e.g. property matches)."""

    title: str
    n_positions: int
    sites: list[SiteSummary]
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        from interp.io import atomic_write_json

        return atomic_write_json(path, self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> CodebookReport:
        data = json.loads(Path(path).read_text())
        sites = [
            SiteSummary(**{**s, "codes": [CodeSummary(**{**c, "top_tokens": [tuple(t) for t in c["top_tokens"]]}) for c in s["codes"]]})
            for s in data["sites"]
        ]
        return cls(title=data["title"], n_positions=data["n_positions"], sites=sites, extra=data.get("extra", {}))

    def to_html(self) -> str:
        """One self-contained page: a frequency chart and a table of codes per bottleneck."""
        import plotly.graph_objects as go

        sections = []
        for i, site in enumerate(self.sites):
            freq = sorted(site.frequencies, reverse=True)
            fig = go.Figure(go.Bar(y=freq, x=list(range(len(freq)))))
            fig.update_layout(
                title=f"{site.hook}: code frequency, sorted ({site.active_codes}/{site.n_codes} active)",
                xaxis_title="code rank", yaxis_title="fraction of positions", yaxis_type="log", height=320,
            )
            rows = []
            for c in site.codes:
                contexts = "<br>".join(
                    f"{html.escape(x['context'])}<b>[{html.escape(x['token'])}]</b> ({x['score']:.2f})"
                    for x in c.top_contexts
                )
                tokens = ", ".join(f"{t} ({v:.2f})" for t, v in c.top_tokens)
                rows.append([c.code, c.frequency, Raw(contexts), tokens])
            header = ["code", "frequency", "top contexts [token] (cosine)", "top tokens (logit)"]
            sections.append(section(site.hook, figure_html(fig, include_plotlyjs=i == 0), table(header, rows)))
        if self.extra:
            sections.append(section("Extra", "<pre>" + html.escape(json.dumps(self.extra, indent=2)) + "</pre>"))
        return page(self.title, sections, subtitle=f"{self.n_positions} positions.")

    def __repr__(self) -> str:
        sites = [f"{s.hook}: {s.active_codes}/{s.n_codes} codes active" for s in self.sites]
        return plain_repr("CodebookReport", f"{self.title!r}, {len(self.sites)} bottleneck(s), {self.n_positions:,} positions", sites)

    def _repr_html_(self) -> str:
        rows = [("positions", self.n_positions)] + [(s.hook, f"{s.active_codes}/{s.n_codes} codes active") for s in self.sites]
        top = self.sites[0] if self.sites else None
        chart = None
        if top is not None:
            freq = sorted(top.frequencies, reverse=True)[: max(1, top.active_codes)]
            chart = line_svg(freq, title=f"{top.hook}: code frequency by rank", x_label="rank", log_y=True)
        return summary_html(f"Codebook report: {self.title}", rows, chart or None, note="to_html() / write_html(path) for the full report")

    def write_html(self, path: str | Path) -> Path:
        from interp.io import atomic_write_text

        atomic_write_text(path, self.to_html())
        return Path(path)


def build_report(
    model,
    codebooks: Codebooks,
    record: CodeRecord,
    title: str = "Codebook report",
    top_codes: int = 50,
    n_contexts: int = 5,
    n_tokens: int = 8,
    window: int = 8,
    extra: dict | None = None,
) -> CodebookReport:
    """Summarise the ``top_codes`` most frequent codes of every bottleneck in ``record``."""
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
    return CodebookReport(title=title, n_positions=int(record.tokens.numel()), sites=sites, extra=extra or {})
