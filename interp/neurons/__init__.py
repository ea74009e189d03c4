"""MLP neurons read through the unembedding: decoding, clamp tests, semantic classes.

- :mod:`interp.neurons.decoding`: :func:`decode` projects every neuron's write (or read)
  vector through the final norm and ``W_U`` into a :class:`NeuronTable`;
- :mod:`interp.neurons.topk`: the chunked, bfloat16-certified top-k search behind it;
- :mod:`interp.neurons.clamping`: :func:`clamp` and :func:`clamp_test`, the causal check;
- :mod:`interp.neurons.classes`: :func:`classify` (semantic-class neurons) and
  :func:`compare` (top-token stability across two models);
- :mod:`interp.neurons.report`: the self-contained HTML reports.

::

    from interp import neurons
    table = neurons.decode(model, k=10)
    table.search("red")

See docs/neurons.md.
"""

from interp.neurons.clamping import ClampResult, clamp, clamp_test, max_activation
from interp.neurons.classes import ClassNeuron, ClassReport, ModelComparison, classify, compare, semantic_classes
from interp.neurons.decoding import NeuronTable, Side, decode, neuron_vectors, unembedding
from interp.neurons.report import clamp_report, class_report_html, decode_report, neuron_table_html
from interp.neurons.topk import Method, topk_scores

__all__ = [
    "ClampResult", "ClassNeuron", "ClassReport", "Method", "ModelComparison", "NeuronTable", "Side",
    "clamp", "clamp_report", "clamp_test", "class_report_html", "classify", "compare", "decode", "decode_report",
    "max_activation", "neuron_table_html", "neuron_vectors", "semantic_classes", "topk_scores", "unembedding",
]
