"""MLP neurons read through the unembedding: decoding, clamp tests, semantic classes.

- :mod:`interp.neurons.decoding`: :func:`decode` projects every neuron's write (or read)
  vector through the final norm and ``W_U`` into a :class:`NeuronTable`;
  ``decoding.run(DecodeConfig(...))`` is what ``interp neurons decode`` runs;
- :mod:`interp.neurons.topk`: the chunked, bfloat16-certified top-k search behind it;
- :mod:`interp.neurons.clamping`: :func:`clamp` and :func:`clamp_test`, the causal check;
  ``clamping.run(ClampConfig(...))`` is what ``interp neurons clamp`` runs;
- :mod:`interp.neurons.classes`: :func:`classify` (:class:`SemanticClasses`) and
  :func:`compare` (:class:`ModelComparison`, top-token stability across two models);
- :mod:`interp.neurons.html`: the renderers behind the results' ``to_html()``.

::

    from interp import neurons
    table = neurons.decode(model, k=10)
    table.search("red")
    result = neurons.decoding.run(neurons.DecodeConfig(layers="3"))   # the CLI's analysis

See docs/neurons.md.
"""

from interp.neurons import clamping, decoding
from interp.neurons.clamping import ClampConfig, ClampResult, clamp, clamp_test, max_activation
from interp.neurons.classes import (
    ClassNeuron,
    ClassReport,
    ModelComparison,
    SemanticClasses,
    classify,
    compare,
    semantic_classes,
)
from interp.neurons.decoding import DecodeConfig, DecodeResult, NeuronTable, Side, decode, neuron_vectors, unembedding
from interp.neurons.html import clamp_report, class_report_html, comparison_report, decode_report
from interp.neurons.topk import Method, topk_scores
from interp.reports import neuron_table_html

__all__ = [
    "ClampConfig",
    "ClampResult",
    "ClassNeuron",
    "ClassReport",
    "DecodeConfig",
    "DecodeResult",
    "Method",
    "ModelComparison",
    "NeuronTable",
    "SemanticClasses",
    "Side",
    "clamp",
    "clamp_report",
    "clamp_test",
    "clamping",
    "class_report_html",
    "classify",
    "compare",
    "comparison_report",
    "decode",
    "decode_report",
    "decoding",
    "max_activation",
    "neuron_table_html",
    "neuron_vectors",
    "semantic_classes",
    "topk_scores",
    "unembedding",
]
