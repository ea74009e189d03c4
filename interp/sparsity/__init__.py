"""How sparse are MLP activations, and how few neurons does a token need?

- :mod:`interp.sparsity.density`: :func:`measure`, per-layer densities (exact nonzero,
  positive pre-activation, above a threshold, DEFT), per-neuron frequencies (dead and
  dense neurons) and per-token counts (the Lazy Neuron Phenomenon, Li et al. 2023);
- :mod:`interp.sparsity.topk`: :func:`topk_curve`, the loss when each token keeps only
  its ``k`` largest activations;
- :mod:`interp.sparsity.coreinfer`: CoreInfer's core neurons (Wang et al. 2024) and
  :func:`core_similarity` of related and unrelated sentences;
- :mod:`interp.sparsity.analysis`: :func:`run`, all three from one :class:`SparsityConfig`
  (what ``interp sparsity`` runs), returning a :class:`SparsityAnalysis`;
- :mod:`interp.sparsity.html`: the renderers behind the results' ``to_html()``.

::

    from interp import sparsity
    result = sparsity.measure(model, batches, max_batches=8)
    curve = sparsity.topk_curve(model, tokens)
    analysis = sparsity.run(sparsity.SparsityConfig(n_batches=4))   # the CLI's analysis

See docs/sparsity.md.
"""

from interp.sparsity.analysis import SparsityAnalysis, SparsityConfig, run
from interp.sparsity.coreinfer import (
    CoreSimilarity,
    core_similarity,
    jaccard,
    related_sentences,
    sentence_core,
    token_core,
)
from interp.sparsity.density import (
    LayerSparsity,
    SparsityResult,
    activation_strength,
    deft_density,
    measure,
    signed_activations,
)
from interp.sparsity.html import core_report, sparsity_report, topk_report
from interp.sparsity.topk import TopKCurve, default_ks, keep_topk, topk_curve, topk_thresholding

__all__ = [
    "CoreSimilarity",
    "LayerSparsity",
    "SparsityAnalysis",
    "SparsityConfig",
    "SparsityResult",
    "TopKCurve",
    "activation_strength",
    "core_report",
    "core_similarity",
    "default_ks",
    "deft_density",
    "jaccard",
    "keep_topk",
    "measure",
    "related_sentences",
    "run",
    "sentence_core",
    "signed_activations",
    "sparsity_report",
    "token_core",
    "topk_curve",
    "topk_report",
    "topk_thresholding",
]
