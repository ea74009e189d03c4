"""The searchable table of decoded neurons, shared by the neuron and the sparsity pages.

A table is anything with ``layer``, ``neuron`` (``[n]`` tensors), ``top_values``
(``[n, k]``), ``top_tokens(row)``, ``bottom_tokens(row)`` and ``len()``: an
:class:`interp.neurons.NeuronTable`. The search box matches whole tokens by
:func:`~interp.reports.tables.token_key`, as :meth:`NeuronTable.search` does.
"""

from __future__ import annotations

import html

from interp.reports.tables import token_chips, token_key

PROMOTED = "#0a6"
"""Colour of a neuron's top (promoted) tokens."""
SUPPRESSED = "#c33"
"""Colour of a neuron's bottom (suppressed) tokens."""

_FILTER_JS = """
<script>
function filterRows(){
  const q=document.getElementById('q').value.toLowerCase().trim();
  const terms=q.split(/[ ,]+/).filter(t=>t.length);
  let shown=0;
  for(const row of document.querySelectorAll('#neurons tbody tr')){
    const text=row.dataset.tokens;
    const ok=!terms.length||terms.some(t=>text.split('|').includes(t));
    row.style.display=ok?'':'none'; if(ok) shown++;
  }
  document.getElementById('count').textContent=shown+' rows';
}
</script>
"""


def neuron_table_html(table, max_rows: int = 5000) -> str:
    """A searchable HTML table of decoded neurons (type words in the box to filter)."""
    rows = []
    for i in range(min(len(table), max_rows)):
        top, bottom = table.top_tokens(i), table.bottom_tokens(i)
        keys = "|".join(html.escape(token_key(t)) for t in top)
        cells = [
            str(int(table.layer[i])),
            str(int(table.neuron[i])),
            token_chips(top, PROMOTED),
            f"{float(table.top_values[i, 0]):.3f}",
            token_chips(bottom, SUPPRESSED),
        ]
        rows.append(f"<tr data-tokens='{keys}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = f"<p>showing the first {max_rows} of {len(table)} neurons</p>" if len(table) > max_rows else ""
    return (
        f"{_FILTER_JS}<p>Search top tokens: <input id='q' oninput='filterRows()' placeholder='e.g. red fox 17'> "
        f"<span id='count'></span></p>{note}<table id='neurons'><thead><tr><th>layer</th><th>neuron</th>"
        f"<th>top tokens (promoted)</th><th>top score</th><th>bottom tokens (suppressed)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
