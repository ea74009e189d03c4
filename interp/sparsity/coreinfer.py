"""Core neurons, as in CoreInfer (Wang et al. 2024): a sentence's few essential MLP neurons.

- *Token-wise core neurons*: for one token, the neurons with positive activation whose
  activation is in the top ``alpha`` fraction of that token's positive activations.
- *Sentence-wise core neurons*: among the neurons that are token-wise core for at least
  one token of the sentence, the ``beta`` fraction that are core most often.

CoreInfer observes that semantically related sentences share core neurons; here
"related" means filled from the same template of the reference corpus (same frame,
different colours, animals, names, places, numbers), and :func:`core_similarity`
compares the mean Jaccard similarity of the core sets of related pairs with that of
unrelated pairs (different templates), per layer.

For a gated MLP the activations are the gated products ranked by size
(:func:`interp.sparsity.density.activation_strength`): "positive" there means nonzero.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import ClassVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.config import Layers, parse_layers
from interp.errors import ConfigError
from interp.hooks import resolve
from interp.reports.tables import layer_span
from interp.results import Result
from interp.sparsity.density import activation_strength


def token_core(activations: Float[Tensor, "pos d_mlp"], alpha: float) -> torch.Tensor:
    """Boolean ``[pos, d_mlp]``: the top ``alpha`` fraction of each token's positive activations."""
    if not 0 < alpha <= 1:
        raise ConfigError(f"alpha must be in (0, 1], got {alpha}")
    positive = activations > 0
    n_keep = (positive.sum(dim=1).float() * alpha).ceil().long()
    order = activations.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(activations.shape[1]).expand_as(order))
    return positive & (rank < n_keep[:, None])


def sentence_core(activations: Float[Tensor, "pos d_mlp"], alpha: float, beta: float) -> set[int]:
    """The ``beta`` fraction (at least one) of token-wise core neurons that are core most often."""
    if not 0 < beta <= 1:
        raise ConfigError(f"beta must be in (0, 1], got {beta}")
    counts = token_core(activations, alpha).sum(dim=0)
    candidates = (counts > 0).nonzero().flatten()
    if not len(candidates):
        return set()
    n_keep = max(1, math.ceil(beta * len(candidates)))
    order = sorted(candidates.tolist(), key=lambda n: (-int(counts[n]), n))
    return set(order[:n_keep])


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def related_sentences(n_templates: int = 6, per_template: int = 6, seed: int = 0) -> list[list[str]]:
    """Sentences from the reference corpus's prose templates, grouped by template."""
    from interp.reference import vocab as V
    from interp.reference.corpus import PROSE_TEMPLATES

    slots = {"colour": V.COLOURS, "animal": V.ANIMALS, "name": V.NAMES, "number": V.NUMBERS, "place": V.PLACES}
    if not 1 <= n_templates <= len(PROSE_TEMPLATES):
        raise ConfigError(f"n_templates must be in [1, {len(PROSE_TEMPLATES)}], got {n_templates}")
    rng = random.Random(seed)
    groups = []
    for template in PROSE_TEMPLATES[:n_templates]:
        group = []
        for _ in range(per_template):
            words = [rng.choice(slots[w[1:-1]]) if w.startswith("{") else w for w in template.split()]
            group.append(" ".join(words).replace(" .", ".").replace(" ,", ","))
        groups.append(group)
    return groups


@dataclass
class CoreSimilarity(Result):
    """Mean Jaccard similarity of sentence-wise core sets: related vs unrelated sentences."""

    stem: ClassVar[str] = "core"
    title: ClassVar[str] = "CoreInfer core neurons"

    model_name: str
    alpha: float
    beta: float
    layers: list[int]
    related: list[float]
    """Per layer: mean Jaccard over pairs of sentences from the same group."""
    unrelated: list[float]
    """Per layer: mean Jaccard over pairs from different groups."""
    core_size: list[float]
    """Per layer: mean number of sentence-wise core neurons."""
    n_groups: int
    n_sentences: int

    @property
    def mean_related(self) -> float:
        """Mean over layers of the related-pair Jaccard similarity."""
        return sum(self.related) / len(self.related) if self.related else float("nan")

    @property
    def mean_unrelated(self) -> float:
        """Mean over layers of the unrelated-pair Jaccard similarity."""
        return sum(self.unrelated) / len(self.unrelated) if self.unrelated else float("nan")

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = (f"model {self.model_name!r}, {layer_span(self.layers)}, {self.n_sentences} sentences in {self.n_groups} "
                f"groups, alpha {self.alpha}, beta {self.beta}: Jaccard related {self.mean_related:.3f} vs "
                f"unrelated {self.mean_unrelated:.3f} (mean over layers)")
        lines = [f"layer {layer}: core size {s:.1f}, related {r:.3f}, unrelated {u:.3f}"
                 for layer, s, r, u in zip(self.layers, self.core_size, self.related, self.unrelated)]
        return plain_repr("CoreSimilarity", head, lines)

    def summary(self) -> str:
        """The settings, then per layer: the mean core size and the related and unrelated Jaccard similarity."""
        head = (f"core neurons (alpha {self.alpha}, beta {self.beta}) of {self.n_sentences} sentences in "
                f"{self.n_groups} groups: Jaccard related {self.mean_related:.3f} vs unrelated "
                f"{self.mean_unrelated:.3f} (mean over layers)")
        lines = [head, "layer  core size  related  unrelated"]
        lines += [f"{layer:5d}  {s:9.1f}  {r:7.3f}  {u:9.3f}"
                  for layer, s, r, u in zip(self.layers, self.core_size, self.related, self.unrelated)]
        return "\n".join(lines)

    def to_html(self) -> str:
        from interp.sparsity.html import core_page

        return core_page(self)

    def _repr_html_(self) -> str:
        from interp.sparsity.html import core_summary

        return core_summary(self)


@torch.no_grad()
def core_similarity(
    model,
    groups: Sequence[Sequence[Int[Tensor, " pos"] | str]],
    layers: Layers | int | Sequence[int] = None,
    alpha: float = 0.4,
    beta: float = 0.2,
    progress: bool = True,
) -> CoreSimilarity:
    """Sentence-wise core sets of every sentence, compared within and across ``groups``.

    ``groups`` holds groups of related sentences, as text (tokenised by the model, BOS
    first) or 1-D token tensors. Position 0 (BOS) is left out of the core computation.
    ``progress`` shows a bar over the groups (a notebook bar in Jupyter, text in a terminal).
    """
    from tqdm.auto import tqdm

    if len(groups) < 2 or any(len(g) < 2 for g in groups):
        raise ConfigError("core_similarity needs at least two groups of at least two sentences each")
    names = resolve(model, "post", parse_layers(layers, model.cfg.n_layers))
    cores: list[list[set[int]]] = [[] for _ in names]
    labels = []
    for gi, group in enumerate(tqdm(groups, desc="core neurons", unit="group", disable=not progress, leave=False)):
        for sentence in group:
            tokens = model.to_tokens(sentence) if isinstance(sentence, str) else sentence.reshape(1, -1)
            _, cache = model.run_with_cache(tokens, names_filter=names)
            for li, name in enumerate(names):
                acts = activation_strength(model, cache[name][0, 1:].float().cpu())
                cores[li].append(sentence_core(acts, alpha, beta))
            labels.append(gi)
    related, unrelated, sizes = [], [], []
    for layer_cores in cores:
        same, diff = [], []
        for i, j in combinations(range(len(labels)), 2):
            (same if labels[i] == labels[j] else diff).append(jaccard(layer_cores[i], layer_cores[j]))
        related.append(sum(same) / len(same))
        unrelated.append(sum(diff) / len(diff))
        sizes.append(sum(len(c) for c in layer_cores) / len(layer_cores))
    return CoreSimilarity(model.cfg.model_name, alpha, beta, [int(n.split(".")[1]) for n in names],
                          related, unrelated, sizes, len(groups), len(labels))
