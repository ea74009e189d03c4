"""Transcoders: wide, sparse MLPs trained to imitate a transformer's MLP layers.

::

    from interp.transcoders import TrainConfig, train, evaluate
    result = train(TrainConfig(model="reference", layers="0-3", arch="topk", k=16, tokens="2M", out="runs/tc"))
    report = evaluate("runs/tc")          # L0, FVU, CE loss recovered, HTML report
    tcs = load_run("runs/tc")             # {layer: Transcoder}
    tc = load("runs/tc/layer_0")          # one transcoder (SAELens layout)
    clt = load_run("runs/clt")            # a CrossLayerTranscoder (a run with arch="clt")

This package owns the transcoder contract: one class hierarchy (:class:`Transcoder`), one
loader of runs (:func:`load_run`), one check that transcoders fit a model (:func:`for_model`),
and one converter of SAELens transcoders (:func:`from_saelens`); circuits, units and
evaluation all use these. Architectures (one module each in
:mod:`interp.transcoders.architectures`) register themselves in
:mod:`interp.transcoders.registry`: ``relu``
(L1, Dunefsky et al. 2024), ``topk`` (+AuxK, Gao et al. 2024), ``skip`` and ``skip_topk``
(skip transcoders, Paulo et al. 2025), ``jumprelu`` and ``skip_jumprelu``, and ``clt``: one
cross-layer transcoder over all the run's layers (Ameisen et al. 2025;
:mod:`interp.transcoders.clt`, saved in circuit-tracer's layout by
:mod:`interp.transcoders.clt_format`). See docs/transcoders.md.

Interop (docs/interop.md): the files load in SAELens (TopK ones after ``import
interp.transcoders.saelens``, which registers their SAELens classes and is the only import
that touches SAELens' registry); :mod:`interp.transcoders.saelens` also converts transcoders
for SAELens' ``HookedSAETransformer``; :func:`export` / :func:`import_transcoders` write and
read SAELens' and sparsify's layouts (:mod:`interp.transcoders.sparsify`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp._lazy import lazy_exports

_LAZY = {
    "Transcoder": ("interp.transcoders.base", "Transcoder"),
    "CrossLayerTranscoder": ("interp.transcoders.clt", "CrossLayerTranscoder"),
    "load_clt": ("interp.transcoders.clt_format", "load_clt"),
    "save_clt": ("interp.transcoders.clt_format", "save_clt"),
    "registry": ("interp.transcoders.registry", None),
    "TrainConfig": ("interp.transcoders.training", "TrainConfig"),
    "TrainResult": ("interp.transcoders.training", "TrainResult"),
    "train": ("interp.transcoders.training", "train"),
    "load_run": ("interp.transcoders.loading", "load_run"),
    "for_model": ("interp.transcoders.loading", "for_model"),
    "as_transcoder": ("interp.transcoders.formats", "as_transcoder"),
    "OptimConfig": ("interp.transcoders.trainer", "OptimConfig"),
    "Trainer": ("interp.transcoders.trainer", "Trainer"),
    "InMemoryActivations": ("interp.transcoders.data", "InMemoryActivations"),
    "PairedBatches": ("interp.transcoders.data", "PairedBatches"),
    "save": ("interp.transcoders.formats", "save"),
    "load": ("interp.transcoders.formats", "load"),
    "from_saelens": ("interp.transcoders.formats", "from_saelens"),
    "load_pretrained": ("interp.transcoders.formats", "load_pretrained"),
    "EvalConfig": ("interp.transcoders.evaluation", "EvalConfig"),
    "EvalResult": ("interp.transcoders.evaluation", "EvalResult"),
    "evaluate": ("interp.transcoders.evaluation", "evaluate"),
    "splice": ("interp.transcoders.evaluation", "splice"),
    "ExportConfig": ("interp.transcoders.interop", "ExportConfig"),
    "ImportConfig": ("interp.transcoders.interop", "ImportConfig"),
    "export": ("interp.transcoders.interop", "export"),
    "import_transcoders": ("interp.transcoders.interop", "import_transcoders"),
}

if TYPE_CHECKING:
    from interp.transcoders import registry
    from interp.transcoders.base import Transcoder
    from interp.transcoders.clt import CrossLayerTranscoder
    from interp.transcoders.clt_format import load_clt, save_clt
    from interp.transcoders.data import InMemoryActivations, PairedBatches
    from interp.transcoders.evaluation import EvalConfig, EvalResult, evaluate, splice
    from interp.transcoders.formats import as_transcoder, from_saelens, load, load_pretrained, save
    from interp.transcoders.interop import ExportConfig, ImportConfig, export, import_transcoders
    from interp.transcoders.loading import for_model, load_run
    from interp.transcoders.trainer import OptimConfig, Trainer
    from interp.transcoders.training import TrainConfig, TrainResult, train


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = list(_LAZY)
