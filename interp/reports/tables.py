"""Escaped HTML tables and the number formatting every report shares."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from interp.errors import ConfigError


class Raw(str):
    """Trusted HTML: a table cell (or summary value) that is inserted without escaping."""


def fmt(value, float_format: str = ".4f") -> str:
    """A value as report text: ``None`` as a dash, floats with ``float_format`` (nan kept),
    ints with thousands separators, booleans as yes/no, anything else as ``str``. Not escaped."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, float_format)
    return str(value)


def cell(value, float_format: str = ".4f") -> str:
    """One cell's HTML: :class:`Raw` as is, everything else formatted and escaped."""
    if isinstance(value, Raw):
        return str(value)
    return html.escape(fmt(value, float_format))


def table(
    header: Sequence[str],
    rows: Sequence[Sequence],
    float_format: str | Sequence[str] = ".4f",
    class_: str | None = None,
    max_rows: int | None = None,
) -> str:
    """An HTML table; every cell is escaped unless it is :class:`Raw`.

    ``float_format`` is one format for all columns or one per column. Numeric cells are
    right-aligned (class ``num``). With ``max_rows``, longer tables show their first
    ``max_rows`` rows and a last row counting the rest.
    """
    formats = [float_format] * len(header) if isinstance(float_format, str) else list(float_format)
    if len(formats) != len(header):
        raise ConfigError(f"float_format has {len(formats)} entries for {len(header)} columns")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    hidden = 0
    if max_rows is not None and len(rows) > max_rows:
        rows, hidden = rows[:max_rows], len(rows) - max_rows
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            attr = ' class="num"' if numeric else ""
            cells.append(f"<td{attr}>{cell(value, formats[min(i, len(formats) - 1)])}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if hidden:
        body.append(f'<tr><td colspan="{len(header)}" class="muted">\u2026 {hidden:,} more</td></tr>')
    klass = f' class="{html.escape(class_)}"' if class_ else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def token_text(token) -> str:
    """A vocabulary entry as readable text: byte-level BPE's ``Ġ`` and SentencePiece's ``▁`` as spaces."""
    return str(token).replace("\u0120", " ").replace("\u2581", " ")


def token_pieces(tokenizer, ids: Sequence[int]) -> list[str]:
    """Each token of a window of ids as the text it adds to the window, decoded as a whole: the
    pieces concatenate to ``tokenizer.decode(ids)``, so the spaces between words survive
    (decoding one token at a time drops them: SentencePiece-style and Metaspace tokenizers strip
    a word's leading space). A decoder that is not prefix-stable (a multi-byte character split
    over tokens) gets the vocabulary entries with word markers as spaces (:func:`token_text`).
    Without a tokenizer, ids as ``<id>``."""
    ids = [int(i) for i in ids]
    if tokenizer is None:
        return [f"<{i}>" for i in ids]
    texts = [tokenizer.decode(ids[:n], clean_up_tokenization_spaces=False) for n in range(len(ids) + 1)]
    if all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:])):
        return [later[len(earlier):] for earlier, later in zip(texts, texts[1:])]
    return [token_text(t) for t in tokenizer.convert_ids_to_tokens(ids)]


def token_key(token) -> str:
    """A token as a search key: :func:`token_text` without surrounding spaces, lower case.

    ``"\u0120Red"``, ``"\u2581red"`` and ``" red"`` all give ``"red"``. Searching decoded neurons
    (:meth:`interp.neurons.NeuronTable.search`), sorting them into classes and the search
    box of the neuron table (:func:`interp.reports.neuron_table_html`) all match by this key.
    """
    return token_text(token).strip().lower()


def token_chips(tokens: Sequence[str], colour: str | None = None) -> Raw:
    """Tokens as ``<code>`` chips (word markers shown as spaces), styled inline so they also show in notebooks."""
    style = "background:#f3f3f3;padding:0 3px;white-space:pre" + (f";color:{colour}" if colour else "")
    return Raw(" ".join(f"<code style='{style}'>{html.escape(token_text(t))}</code>" for t in tokens))


def layer_numbers(layers: Sequence[int]) -> str:
    """``3``, ``0-11`` (consecutive) or ``0, 2, 5`` (at most six shown); ``none`` when empty."""
    unique = sorted({int(layer) for layer in layers})
    if not unique:
        return "none"
    if len(unique) > 2 and unique == list(range(unique[0], unique[-1] + 1)):
        return f"{unique[0]}-{unique[-1]}"
    shown = ", ".join(str(layer) for layer in unique[:6])
    return shown + (f", ... (+{len(unique) - 6} more)" if len(unique) > 6 else "")


def layer_span(layers: Sequence[int]) -> str:
    """``layer 3``, ``layers 0-11`` or ``layers 0, 2, 5``, for reprs and headers."""
    return ("layer " if len(set(layers)) == 1 else "layers ") + layer_numbers(layers)
