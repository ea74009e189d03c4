"""Code reports: JSON data, rendered separately into one self-contained HTML page.

:func:`build_report` computes, for the most frequent codes of every bottleneck, their
frequency, top contexts and top tokens through the unembedding. :class:`CodebookReport`
is plain data with ``save``/``load`` (JSON) and ``to_html`` (plotly, inlined, no CDN).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from interp.codebooks.insert import Codebooks
from interp.codebooks.search import CodeRecord, code_top_tokens, ranked_codes


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
        from interp.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)

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

        parts = [f"<h1>{html.escape(self.title)}</h1>", f"<p>{self.n_positions} positions.</p>"]
        first = True
        for site in self.sites:
            freq = sorted(site.frequencies, reverse=True)
            fig = go.Figure(go.Bar(y=freq, x=list(range(len(freq)))))
            fig.update_layout(
                title=f"{site.hook}: code frequency, sorted ({site.active_codes}/{site.n_codes} active)",
                xaxis_title="code rank", yaxis_title="fraction of positions", yaxis_type="log", height=320,
            )
            parts.append(f"<h2>{html.escape(site.hook)}</h2>")
            parts.append(fig.to_html(full_html=False, include_plotlyjs=True if first else False))
            first = False
            rows = []
            for c in site.codes:
                contexts = "<br>".join(
                    f"{html.escape(x['context'])}<b>[{html.escape(x['token'])}]</b> ({x['score']:.2f})"
                    for x in c.top_contexts
                )
                tokens = ", ".join(f"{html.escape(t)} ({v:.2f})" for t, v in c.top_tokens)
                rows.append(f"<tr><td>{c.code}</td><td>{c.frequency:.4f}</td><td>{contexts}</td><td>{tokens}</td></tr>")
            parts.append(
                "<table><tr><th>code</th><th>frequency</th><th>top contexts [token] (cosine)</th>"
                "<th>top tokens (logit)</th></tr>" + "".join(rows) + "</table>"
            )
        if self.extra:
            parts.append("<h2>Extra</h2><pre>" + html.escape(json.dumps(self.extra, indent=2)) + "</pre>")
        style = (
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}</style>"
        )
        return f"<!DOCTYPE html><html><head><meta charset='utf-8'>{style}</head><body>{''.join(parts)}</body></html>"

    def _repr_html_(self) -> str:
        return self.to_html()

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
