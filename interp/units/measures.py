"""The pieces the units comparison measures with: label classes and precision at a recall.

- :func:`best_precision_at_recall`: over all units of a kind, the best precision any one
  unit reaches for a class when its threshold is set so that it fires on at least a
  given fraction (the recall) of the class's positions;
- :func:`reference_classes`: the reference corpus's labelled classes (semantic classes
  such as colour or year, and one class per FSM state) as position masks;
- :func:`token_classes`: for any tokenizer, the positions whose token is a word of a
  semantic class (" red", " cat", ...), for models without a labelled corpus (GPT-2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.errors import ConfigError
from interp.reports.tables import token_key

SEMANTIC_LABELS: tuple[str, ...] = ("colour", "animal", "name", "number", "place", "job", "subject", "year", "century")
"""Reference-corpus labels that name a token class (a label per token, from the corpus generator)."""
FSM_PREFIX = "state "
"""Class names of FSM states: ``"state SA"`` is "this token is state SA inside an FSM trace"."""


@dataclass
class ClassMatch:
    """The best unit of one kind for one class."""

    precision: float
    """Precision of the best unit at its threshold; 0.0 when no unit reaches the recall."""
    unit: int
    """Index of that unit (-1 when none reaches the recall)."""
    threshold: float | None
    """Its threshold: it fires where its activation is >= this (None when no unit reaches the recall)."""
    recall: float
    """Recall it actually reaches (>= the asked recall; more when activations tie)."""


def best_precision_at_recall(
    scores: Float[Tensor, "positions units"], mask: Bool[Tensor, " positions"], recall: float = 0.5
) -> ClassMatch:
    """The unit whose activations best single out ``mask`` at a recall of at least ``recall``.

    ``scores`` holds every unit's activation at every position, ``-inf`` where the unit
    is not active (so it can never fire there). Each unit gets the threshold ``t`` = its
    ``ceil(recall * n)``-th largest activation over the ``n`` positions where ``mask``
    holds: it then fires (activation >= ``t``) on at least that fraction of the class. A
    unit whose ``t`` is ``-inf`` (active on fewer class positions than needed) cannot
    reach the recall and is left out. Of the rest, the one with the highest precision
    (class positions among the positions where it fires) wins.
    """
    if not 0 < recall <= 1:
        raise ConfigError(f"recall must be in (0, 1], got {recall}")
    if scores.shape[0] != mask.shape[0]:
        raise ConfigError(f"scores cover {scores.shape[0]} positions but the mask {mask.shape[0]}")
    n_pos = int(mask.sum())
    if n_pos == 0:
        raise ConfigError("the class holds at no position; no unit can reach a recall on it")
    scores = scores.float()
    positives = scores[mask]
    rank = max(1, math.ceil(recall * n_pos - 1e-9))
    thresholds = positives.topk(rank, dim=0).values[-1]
    valid = torch.isfinite(thresholds)
    if not bool(valid.any()):
        return ClassMatch(0.0, -1, None, 0.0)
    hits = (positives >= thresholds).sum(0).float()
    fired = _count_at_least(scores, thresholds).float()
    precision = torch.where(valid, hits / fired.clamp(min=1), torch.full_like(hits, -1.0))
    best = int(precision.argmax())
    return ClassMatch(float(precision[best]), best, float(thresholds[best]), float(hits[best] / n_pos))


def _count_at_least(scores: Tensor, thresholds: Tensor, chunk: int = 256) -> Tensor:
    """Per unit, the positions where its score is >= its threshold (in column chunks)."""
    counts = []
    for start in range(0, scores.shape[1], chunk):
        counts.append((scores[:, start : start + chunk] >= thresholds[start : start + chunk]).sum(0))
    return torch.cat(counts)


def reference_classes(
    tokens: Int[Tensor, "n ctx"],
    labels: Sequence[Sequence[str | None]],
    tokenizer,
    semantic: Sequence[str] = SEMANTIC_LABELS,
    fsm_states: bool = True,
) -> tuple[dict[str, Bool[Tensor, "n ctx"]], dict[str, list[str]]]:
    """Masks of the reference corpus's labelled classes, and their groups.

    A semantic class (``"colour"``, ``"year"``, ...) holds where the corpus labelled the
    token with that name: the slot fillers of prose and fact sentences and the years of
    greater-than sentences; a colour word repeated in an induction segment carries the
    label ``induction_*`` instead and is not in the class. FSM state ``S`` holds where
    the token is ``S`` inside an FSM trace (label ``fsm_state``). Returns ``(masks,
    groups)`` with groups ``"token classes"`` and ``"FSM states"``.
    """
    from interp.reference import vocab as V

    if len(labels) != tokens.shape[0] or any(len(row) != tokens.shape[1] for row in labels):
        raise ConfigError(f"labels must give one label per token of the {tuple(tokens.shape)} tokens")
    present = {lab for row in labels for lab in row if lab is not None}
    unknown = [s for s in semantic if s not in V.SEMANTIC_CLASSES and s not in ("year", "century")]
    if unknown:
        raise ConfigError(f"unknown label classes {unknown}; the corpus labels {sorted(present)}")
    masks: dict[str, Tensor] = {}
    groups: dict[str, list[str]] = {"token classes": [], "FSM states": []}
    for name in semantic:
        masks[name] = torch.tensor([[lab == name for lab in row] for row in labels], dtype=torch.bool)
        groups["token classes"].append(name)
    if fsm_states:
        vocab = tokenizer.get_vocab()
        in_trace = torch.tensor([[lab == "fsm_state" for lab in row] for row in labels], dtype=torch.bool)
        for state in V.FSM_STATES:
            name = FSM_PREFIX + state
            masks[name] = in_trace & (tokens == vocab[V.SPACE + state])
            groups["FSM states"].append(name)
    return masks, {g: names for g, names in groups.items() if names}


def token_classes(
    tokens: Int[Tensor, "n ctx"], tokenizer, classes: Mapping[str, Sequence[str]] | None = None
) -> tuple[dict[str, Bool[Tensor, "n ctx"]], dict[str, list[str]]]:
    """Masks of the positions whose token is one of a class's words, for any tokenizer.

    ``classes`` maps a name to words (default: the reference corpus's semantic classes as
    plain words, e.g. ``"colour": ("red", "blue", ...)``). A token matches a word when they
    are equal after dropping case, leading spaces and word markers (``Ġ``, ``▁``), so
    GPT-2's ``" red"`` matches ``"red"``. Words that are not single tokens never match.
    """
    if classes is None:
        from interp.reference import vocab as V

        classes = {name: words for name, words in V.SEMANTIC_CLASSES.items() if name != "fsm_state"}
    vocab = tokenizer.get_vocab()
    by_text: dict[str, list[int]] = {}
    for text, index in vocab.items():
        by_text.setdefault(token_key(text), []).append(index)
    masks = {}
    for name, words in classes.items():
        ids = sorted({i for w in words for i in by_text.get(token_key(w), [])})
        masks[name] = torch.isin(tokens, torch.tensor(ids, dtype=tokens.dtype)) if ids else torch.zeros_like(tokens, dtype=torch.bool)
    return masks, {"token classes": list(classes)}

