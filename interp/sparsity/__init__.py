"""How sparse are MLP activations, and how few neurons does a token need?

- :mod:`interp.sparsity.density`: :func:`measure`, per-layer densities (exact nonzero,
  positive pre-activation, above a threshold, DEFT), per-neuron frequencies (dead and
  dense neurons) and per-token counts (the Lazy Neuron Phenomenon, Li et al. 2023);
- :mod:`interp.sparsity.topk`: :func:`topk_curve`, the loss when each token keeps only
  its ``k`` largest activations;
- :mod:`interp.sparsity.coreinfer`: CoreInfer's core neurons (Wang et al. 2024) and
  :func:`core_similarity` of related and unrelated sentences;
- :mod:`interp.sparsity.report`: the self-contained HTML report.

::

    from interp import sparsity
    result = sparsity.measure(model, batches, max_batches=8)
    curve = sparsity.topk_curve(model, tokens)

See docs/sparsity.md.
"""

from interp.sparsity.coreinfer import (
    CoreSimilarity,
    core_similarity,
    jaccard,
    related_sentences,
    sentence_core,
    token_core,
)
from interp.sparsity.density import LayerSparsity, SparsityResult, deft_density, measure
from interp.sparsity.report import sparsity_report
from interp.sparsity.topk import TopKCurve, default_ks, keep_topk, topk_curve, topk_thresholding

__all__ = [
    "CoreSimilarity", "LayerSparsity", "SparsityResult", "TopKCurve", "core_similarity", "deft_density",
    "default_ks", "jaccard", "keep_topk", "measure", "related_sentences", "sentence_core", "sparsity_report",
    "token_core", "topk_curve", "topk_thresholding",
]
