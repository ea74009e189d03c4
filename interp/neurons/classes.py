"""What decoded neurons are about: semantic classes, and stability across models.

- :func:`classify`: the neurons whose top decoded tokens all fall in one semantic class
  (colours, animals, years, ...), with a strength per neuron, so a person can see how many
  "colour neurons" a model has and pick the strongest to clamp.
- :func:`compare`: for two models of the same shape, the fraction of neurons per layer
  whose top decoded token is unchanged (the 2025 neuron-decoding paper finds 75% of
  Llama 3.1 8B's neurons keep their top token after instruction tuning).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from interp.errors import ConfigError
from interp.reports.tables import layer_span, token_key
from interp.results import Result

if TYPE_CHECKING:  # decoding imports this module (its run() classifies what it decodes)
    from interp.neurons.decoding import NeuronTable


@dataclass
class ClassNeuron:
    """One neuron whose top tokens all belong to one class."""

    layer: int
    neuron: int
    cls: str
    tokens: list[str]
    strength: float
    """Mean score of the top tokens (logit per unit activation, see interp.neurons)."""

    def __repr__(self) -> str:
        return f"ClassNeuron(L{self.layer}N{self.neuron} {self.cls}: {self.tokens[:5]}, strength {self.strength:.3f})"


@dataclass
class SemanticClasses(Result):
    """Neurons per semantic class, strongest first (what :func:`classify` returns)."""

    stem: ClassVar[str] = "classes"
    title: ClassVar[str] = "Semantic-class neurons"

    top: int
    """How many top tokens had to be in the class."""
    side: str
    counts: dict[str, int]
    neurons: dict[str, list[ClassNeuron]]
    n_neurons: int
    """Neurons decoded."""

    @property
    def n_class_neurons(self) -> int:
        """Neurons listed under at least one class."""
        return len({(n.layer, n.neuron) for ns in self.neurons.values() for n in ns})

    def _headline(self) -> str:
        return (f"{self.n_class_neurons:,} of {self.n_neurons:,} neurons have their top {self.top} {self.side}-side "
                f"tokens in one of {len(self.counts)} classes")

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        lines = []
        for cls, count in sorted(self.counts.items(), key=lambda item: -item[1]):
            best = self.neurons[cls][0] if self.neurons.get(cls) else None
            lines.append(f"{cls}: {count}" + (f", strongest L{best.layer}N{best.neuron} {best.tokens} "
                                              f"({best.strength:.3f})" if best else ""))
        return plain_repr("SemanticClasses", self._headline(), lines)

    def strongest(self, cls: str) -> ClassNeuron:
        """The class's neuron with the largest strength (KeyError when the class has none)."""
        if not self.neurons.get(cls):
            raise KeyError(f"no neuron's top {self.top} tokens are all in class {cls!r}")
        return self.neurons[cls][0]

    def summary(self) -> str:
        """The headline, then per class: how many neurons, and the strongest with its top tokens."""
        lines = [self._headline(), f"{'class':12s} {'neurons':>7s}  strongest"]
        for cls, count in self.counts.items():
            best = self.neurons[cls][0] if self.neurons[cls] else None
            shown = f"L{best.layer}N{best.neuron} {best.tokens} ({best.strength:.3f})" if best else "-"
            lines.append(f"{cls:12s} {count:7d}  {shown}")
        return "\n".join(lines)

    def to_html(self) -> str:
        from interp.neurons.html import classes_page

        return classes_page(self)

    def _repr_html_(self) -> str:
        from interp.neurons.html import classes_summary

        return classes_summary(self)


ClassReport = SemanticClasses
"""Former name of :class:`SemanticClasses` (it is a result, not a report)."""


def semantic_classes(tokens: bool = True) -> dict[str, tuple[str, ...]]:
    """The reference corpus's semantic classes plus two-digit years (class "year").

    ``tokens=True`` gives the reference vocabulary's exact token strings ("▁red", and
    "17" for the year digits, which must not match the century token "▁17"); use them
    with ``classify(..., exact=True)``. ``tokens=False`` gives plain words, for other
    tokenizers (GPT-2's " red" matches "red").
    """
    from interp.reference import vocab as V

    classes = {name: tuple(V.SPACE + w if tokens else w for w in words) for name, words in V.SEMANTIC_CLASSES.items()}
    classes["year"] = tuple(V.TWO_DIGITS)
    return classes


def classify(
    table: NeuronTable, classes: Mapping[str, Sequence[str]], top: int = 3, where: str = "top", exact: bool = False
) -> SemanticClasses:
    """Neurons whose first ``top`` decoded tokens all belong to one class.

    ``classes`` maps a class name to its words or token strings: matched as in
    :meth:`NeuronTable.search` (ignoring case, spaces and word markers), or as exact
    token strings with ``exact=True``. A token in two classes counts for both, so a
    neuron is listed under every class that holds all its top tokens.
    """
    if not 1 <= top <= table.k:
        raise ConfigError(f"top must be in [1, {table.k}] (the table keeps {table.k} tokens), got {top}")
    ids = (table.top_ids if where == "top" else table.bottom_ids)[:, :top]
    values = (table.top_values if where == "top" else table.bottom_values)[:, :top]
    normalised = list(table.vocab) if exact else [token_key(t) for t in table.vocab]
    counts: dict[str, int] = {}
    found: dict[str, list[ClassNeuron]] = {}
    for cls, words in classes.items():
        wanted = set(words) if exact else {token_key(w) for w in words}
        member = torch.tensor([t in wanted for t in normalised])
        rows = member[ids].all(dim=1).nonzero().flatten().tolist()
        entries = [
            ClassNeuron(int(table.layer[r]), int(table.neuron[r]), cls,
                        [table.vocab[i] for i in ids[r].tolist()], float(values[r].mean().abs()))
            for r in rows
        ]
        entries.sort(key=lambda e: -e.strength)
        counts[cls] = len(entries)
        found[cls] = entries
    return SemanticClasses(top=top, side=table.side, counts=counts, neurons=found, n_neurons=len(table))


@dataclass
class ModelComparison(Result):
    """Per layer, the fraction of neurons whose top decoded token is the same in two models."""

    stem: ClassVar[str] = "comparison"
    title: ClassVar[str] = "Neuron decoding: model comparison"

    model_a: str
    model_b: str
    side: str
    layers: list[int]
    unchanged: list[float]
    """Fraction of neurons of each layer with the same top-1 token."""
    overlap: list[float]
    """Mean overlap of the two top-k sets (|A & B| / k) per layer."""

    @property
    def mean_unchanged(self) -> float:
        """Fraction of all compared neurons with the same top-1 token (layers have equal sizes)."""
        return sum(self.unchanged) / len(self.unchanged) if self.unchanged else float("nan")

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = (f"{self.model_a!r} vs {self.model_b!r}, {self.side} side, {layer_span(self.layers)}: "
                f"top-1 unchanged {self.mean_unchanged:.3f}")
        lines = [f"layer {layer}: unchanged {u:.3f}, top-k overlap {o:.3f}"
                 for layer, u, o in zip(self.layers, self.unchanged, self.overlap)]
        return plain_repr("ModelComparison", head, lines)

    def summary(self) -> str:
        """Per layer: the fraction of neurons with an unchanged top-1 token, and the top-k overlap."""
        lines = [f"{self.model_a} vs {self.model_b} ({self.side} side): top-1 unchanged {self.mean_unchanged:.3f}",
                 "layer  top-1 unchanged  top-k overlap"]
        lines += [f"{layer:5d}  {u:15.3f}  {o:13.3f}" for layer, u, o in zip(self.layers, self.unchanged, self.overlap)]
        return "\n".join(lines)

    def to_html(self) -> str:
        from interp.neurons.html import comparison_page

        return comparison_page(self)

    def _repr_html_(self) -> str:
        from interp.neurons.html import comparison_summary

        return comparison_summary(self)


def compare(a: NeuronTable, b: NeuronTable) -> ModelComparison:
    """Compare two decodings of same-shape models (same layers, neurons, side and vocabulary)."""
    if a.side != b.side or not torch.equal(a.layer, b.layer) or not torch.equal(a.neuron, b.neuron):
        raise ConfigError("the tables must decode the same side of the same layers and neurons; decode both models alike")
    if a.vocab != b.vocab:
        raise ConfigError("the two models have different vocabularies; top tokens cannot be compared by id")
    k = min(a.k, b.k)
    same = a.top_ids[:, 0] == b.top_ids[:, 0]
    overlap = (a.top_ids[:, :k, None] == b.top_ids[:, None, :k]).any(dim=2).float().mean(dim=1)
    layers = sorted(set(a.layer.tolist()))
    return ModelComparison(
        model_a=a.model_name,
        model_b=b.model_name,
        side=a.side,
        layers=layers,
        unchanged=[float(same[a.layer == layer].float().mean()) for layer in layers],
        overlap=[float(overlap[a.layer == layer].mean()) for layer in layers],
    )
