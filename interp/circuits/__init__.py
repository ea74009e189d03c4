"""Circuits through transcoders: replacement model, attribution graphs, exports, HTML pages.

::

    from interp.circuits import trace
    from interp.transcoders import load_run
    model = interp.load_model("reference")
    graph = trace(model, load_run("runs/tc"), "The war lasted from the year 1745 to the year 17")
                              # per-layer transcoders or a cross-layer transcoder run alike
    graph.write("graph/")     # graph.json (circuit-tracer / Neuronpedia), graph.graphml, graph.html, graph.pt,
                              # graph_files/ (circuit-tracer's local server reads it)
    interp.circuits.read_graph("graph/graph.json")   # back into a Graph (also circuit-tracer's files)

or, from a config naming the model and the transcoders (what ``interp circuit trace`` runs)::

    graph = interp.circuits.run(CircuitTraceConfig(prompt="The war lasted from the year 1745 to the year 17"))

See docs/circuits.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp._lazy import lazy_exports

_LAZY = {
    "TranscoderLike": ("interp.circuits.transcoder", "TranscoderLike"),
    "PlantedTranscoder": ("interp.circuits.transcoder", "PlantedTranscoder"),
    "TranscoderLoadError": ("interp.errors", "TranscoderLoadError"),
    "load_transcoders": ("interp.circuits.transcoder", "load_transcoders"),
    "TargetError": ("interp.errors", "TargetError"),
    "ReplacementModel": ("interp.circuits.replacement", "ReplacementModel"),
    "Dictionary": ("interp.circuits.dictionary", "Dictionary"),
    "as_dictionary": ("interp.circuits.dictionary", "as_dictionary"),
    "ablate_features": ("interp.circuits.replacement", "ablate_features"),
    "AttributionConfig": ("interp.circuits.attribution", "AttributionConfig"),
    "LogitTarget": ("interp.circuits.attribution", "LogitTarget"),
    "token_target": ("interp.circuits.attribution", "token_target"),
    "difference_target": ("interp.circuits.attribution", "difference_target"),
    "attribute": ("interp.circuits.attribution", "attribute"),
    "head_paths": ("interp.circuits.attribution", "head_paths"),
    "virtual_weights": ("interp.circuits.virtual", "virtual_weights"),
    "deembedding": ("interp.circuits.virtual", "deembedding"),
    "direct_logit_effects": ("interp.circuits.virtual", "direct_logit_effects"),
    "Graph": ("interp.circuits.graph", "Graph"),
    "Node": ("interp.circuits.graph", "Node"),
    "HeadPath": ("interp.circuits.graph", "HeadPath"),
    "prune": ("interp.circuits.graph", "prune"),
    "graph_scores": ("interp.circuits.graph", "graph_scores"),
    "TraceConfig": ("interp.circuits.tracing", "TraceConfig"),
    "trace": ("interp.circuits.tracing", "trace"),
    "CircuitTraceConfig": ("interp.circuits.tracing", "CircuitTraceConfig"),
    "run": ("interp.circuits.tracing", "run"),
    "salient_targets": ("interp.circuits.tracing", "salient_targets"),
    "resolve_targets": ("interp.circuits.tracing", "resolve_targets"),
    "to_json": ("interp.circuits.export", "to_json"),
    "to_html": ("interp.circuits.html", "to_html"),
    "write_all": ("interp.circuits.export", "write_all"),
    "write_graphml": ("interp.circuits.export", "write_graphml"),
    "write_graph_files": ("interp.circuits.export", "write_graph_files"),
    "read_graph": ("interp.circuits.formats", "read_graph"),
}

if TYPE_CHECKING:
    from interp.circuits.attribution import (
        AttributionConfig,
        LogitTarget,
        attribute,
        difference_target,
        head_paths,
        token_target,
    )
    from interp.circuits.export import to_json, write_all, write_graph_files, write_graphml
    from interp.circuits.formats import read_graph
    from interp.circuits.html import to_html
    from interp.circuits.graph import Graph, HeadPath, Node, graph_scores, prune
    from interp.circuits.dictionary import Dictionary, as_dictionary
    from interp.circuits.replacement import ReplacementModel, ablate_features
    from interp.circuits.tracing import CircuitTraceConfig, TraceConfig, resolve_targets, run, salient_targets, trace
    from interp.circuits.transcoder import PlantedTranscoder, TranscoderLike, load_transcoders
    from interp.errors import TargetError, TranscoderLoadError
    from interp.circuits.virtual import deembedding, direct_logit_effects, virtual_weights


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = list(_LAZY)
