"""Clamp verification: does forcing a neuron on raise the tokens it decodes to?

Decoding a neuron (:mod:`interp.neurons`) is a prediction from weights alone. The test
follows "Decoding specialised feature neurons in LLMs with the final projection layer"
(2025): set the neuron's activation (``hook_post``) to a fixed value at every position
during the forward pass, and measure the change in log-probability of its decoded tokens.
The same clamp applied to random neurons of the same layer, with the same value and the
same target tokens, is the baseline: a clamp that works beats most random neurons.

:func:`run` is what ``interp neurons clamp`` runs: decode the neuron's layer for its top
tokens, build prompts from a token source, and :func:`clamp_test`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Int
from torch import Tensor

from interp.config import check_positive
from interp.errors import ConfigError
from interp.hooks import resolve
from interp.neurons.decoding import decode
from interp.results import Result


@contextlib.contextmanager
def clamp(model, layer: int, neurons: int | Sequence[int], value: float) -> Iterator[None]:
    """Inside the block, neuron(s) ``neurons`` of ``layer`` output ``value`` at every position.

    The hook lives at ``blocks.L.mlp.hook_post`` and is removed when the block exits,
    even on error (transformer-lens' level-scoped ``model.hooks``).
    """
    (name,) = resolve(model, "post", layer)
    ids = [neurons] if isinstance(neurons, int) else list(neurons)
    d_mlp = model.cfg.d_mlp
    if any(not 0 <= n < d_mlp for n in ids):
        raise ConfigError(f"neuron ids must be in [0, {d_mlp}), got {ids}")

    def set_value(activation: Tensor, hook) -> Tensor:
        activation = activation.clone()
        activation[..., ids] = value
        return activation

    with model.hooks(fwd_hooks=[(name, set_value)]):
        yield


@torch.no_grad()
def _target_logprob(model, tokens: Tensor, targets: Tensor) -> Tensor:
    """Mean over positions (after BOS) of the mean log-probability of ``targets``."""
    logits = model(tokens, return_type="logits")[:, 1:]
    logprobs = logits.float().log_softmax(dim=-1)
    return logprobs[..., targets].mean(dim=(0, 1))


@dataclass
class ClampResult(Result):
    """The effect of clamping one neuron on its decoded tokens, against random neurons."""

    stem: ClassVar[str] = "clamp"
    title: ClassVar[str] = "Neuron clamp test"

    layer: int
    neuron: int
    value: float
    """The activation the neuron was clamped to."""
    targets: list[str]
    """The tokens whose log-probability is measured (the neuron's decoded tokens)."""
    target_ids: list[int]
    delta: list[float]
    """Change of mean log-probability of each target token when the neuron is clamped."""
    random_neurons: list[int]
    random_delta: list[float]
    """Mean change over the targets for each random neuron clamped to the same value."""
    baseline_prob: float
    """Geometric mean over positions of the first target's probability, without a clamp."""
    clamped_prob: float
    """The same with the neuron clamped."""

    @property
    def mean_delta(self) -> float:
        return sum(self.delta) / len(self.delta)

    @property
    def percentile(self) -> float:
        """Fraction of random neurons whose clamp raised the targets less than this one's."""
        if not self.random_delta:
            return float("nan")
        return sum(d < self.mean_delta for d in self.random_delta) / len(self.random_delta)

    def summary(self) -> str:
        """One line: the targets' log-probability change, against random neurons, and the first target's probability."""
        return (
            f"L{self.layer}N{self.neuron} clamped to {self.value:.3g}: targets {self.targets[:5]} "
            f"log-prob {self.mean_delta:+.3f} (random neurons {self.mean_random_delta:+.3f}, beats "
            f"{self.percentile:.0%}); p({self.targets[0]}) {self.baseline_prob:.4f} -> {self.clamped_prob:.4f}"
        )

    @property
    def mean_random_delta(self) -> float:
        """Mean change over the targets when a random neuron is clamped (nan without random neurons)."""
        return sum(self.random_delta) / len(self.random_delta) if self.random_delta else float("nan")

    def __repr__(self) -> str:
        from interp.reports import plain_repr

        head = (f"L{self.layer}N{self.neuron} clamped to {self.value:.3g}: targets' log-prob {self.mean_delta:+.3f}, "
                f"random neurons {self.mean_random_delta:+.3f}, beats {self.percentile:.0%} of {len(self.random_delta)}")
        lines = [f"targets {self.targets[:5]}{' ...' if len(self.targets) > 5 else ''}",
                 f"p({self.targets[0]!r}) {self.baseline_prob:.4f} -> {self.clamped_prob:.4f}"]
        return plain_repr("ClampResult", head, lines)

    def to_dict(self) -> dict[str, Any]:
        """The fields plus ``mean_delta`` and ``percentile``, for readers of the JSON (ignored on load)."""
        return {**super().to_dict(), "mean_delta": self.mean_delta, "percentile": self.percentile}

    def to_html(self) -> str:
        from interp.neurons.html import clamp_page

        return clamp_page([self])

    def _repr_html_(self) -> str:
        from interp.neurons.html import clamp_summary

        return clamp_summary(self)


@torch.no_grad()
def max_activation(model, layer: int, tokens: Int[Tensor, "batch pos"]) -> float:
    """The largest activation of any neuron of ``layer`` on ``tokens`` (a default clamp value)."""
    (name,) = resolve(model, "post", layer)
    _, cache = model.run_with_cache(tokens, names_filter=[name])
    return float(cache[name].max())


@torch.no_grad()
def clamp_test(
    model,
    layer: int,
    neuron: int,
    tokens: Int[Tensor, "batch pos"],
    target_ids: Sequence[int],
    value: float | None = None,
    n_random: int = 20,
    seed: int = 0,
) -> ClampResult:
    """Clamp neuron ``neuron`` of ``layer`` on ``tokens`` and measure its targets' log-probability.

    Args:
        tokens: prompts, BOS first; the effect is averaged over every later position.
        target_ids: the tokens to watch, usually the neuron's top decoded tokens.
        value: the clamp value; None uses twice the largest activation of any neuron of
            the layer on ``tokens``, so random neurons get the same, realistic push.
        n_random: random neurons of the same layer (never ``neuron``) clamped to ``value``.
    """
    targets = torch.as_tensor(list(target_ids), dtype=torch.long)
    if not len(targets):
        raise ConfigError("clamp_test needs at least one target token id")
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ConfigError(f"tokens must be [batch, pos] with pos >= 2, got shape {tuple(tokens.shape)}")
    if value is None:
        value = 2.0 * max(max_activation(model, layer, tokens), 1e-3)
    base = _target_logprob(model, tokens, targets)
    with clamp(model, layer, neuron, value):
        clamped = _target_logprob(model, tokens, targets)
    generator = torch.Generator().manual_seed(seed)
    others = [n for n in torch.randperm(model.cfg.d_mlp, generator=generator).tolist() if n != neuron][:n_random]
    random_delta = []
    for other in others:
        with clamp(model, layer, other, value):
            random_delta.append(float((_target_logprob(model, tokens, targets) - base).mean()))
    vocab = model.tokenizer.convert_ids_to_tokens(targets.tolist()) if model.tokenizer is not None else [
        f"<{t}>" for t in targets.tolist()
    ]
    return ClampResult(
        layer=layer,
        neuron=neuron,
        value=float(value),
        targets=list(vocab),
        target_ids=targets.tolist(),
        delta=(clamped - base).tolist(),
        random_neurons=others,
        random_delta=random_delta,
        baseline_prob=float(base[0].exp()),
        clamped_prob=float(clamped[0].exp()),
    )


# --- the clamp command's analysis ------------------------------------------------------


@dataclass
class ClampConfig:
    """Clamp one neuron on prompts and measure its decoded tokens' log-probability."""

    layer: int
    """Layer of the neuron."""
    neuron: int
    """Index of the neuron in its layer."""
    model: str = "reference"
    """'reference', a TransformerLens model name (e.g. 'gpt2', 'EleutherAI/pythia-70m'), or a local checkpoint directory."""
    targets: int = 3
    """Watch the neuron's first this-many decoded (top, write-side) tokens."""
    value: float | None = None
    """Clamp value (default: twice the layer's largest activation on the prompts)."""
    n_random: int = 20
    """Random neurons of the same layer clamped for comparison."""
    data: str = "reference"
    """Prompt source: 'reference' (as plain text for other tokenizers), a .txt/.jsonl path, or a Hugging Face dataset name."""
    n_prompts: int = 16
    """Prompts (rows) to average over."""
    ctx_len: int = 64
    """Tokens per prompt."""
    seed: int = 0
    """Seed of the prompts and of the random neurons."""
    out: str = "runs/neurons/clamp"
    """Output directory: clamp.json and clamp.html."""

    def __post_init__(self) -> None:
        check_positive(targets=self.targets, n_prompts=self.n_prompts)
        for name, value, low in (("layer", self.layer, 0), ("neuron", self.neuron, 0), ("n-random", self.n_random, 0),
                                 ("ctx-len", self.ctx_len, 2)):
            if value < low:
                raise ConfigError(f"--{name} must be at least {low}, got {value}")


def run(cfg: ClampConfig) -> ClampResult:
    """What ``interp neurons clamp`` runs: the neuron's first ``cfg.targets`` decoded tokens
    watched while it is clamped on ``cfg.n_prompts`` prompts of ``cfg.data``."""
    from interp.data import load_contexts
    from interp.models import check_context, load_model

    model = load_model(cfg.model, device="cpu")
    check_context(model, cfg.ctx_len)
    if cfg.layer >= model.cfg.n_layers:
        raise ConfigError(f"--layer must be in [0, {model.cfg.n_layers}) for {cfg.model!r}, got {cfg.layer}")
    if cfg.neuron >= model.cfg.d_mlp:
        raise ConfigError(f"--neuron must be in [0, d_mlp={model.cfg.d_mlp}), got {cfg.neuron}")
    if model.tokenizer is None:
        raise ConfigError("the model has no tokenizer, so prompts cannot be built from data")
    table = decode(model, cfg.layer, "out", k=cfg.targets)
    targets = table.top_ids[table.row_of(cfg.layer, cfg.neuron)].tolist()
    tokens = load_contexts(cfg.data, model.tokenizer, cfg.n_prompts, cfg.ctx_len, seed=cfg.seed)
    return clamp_test(model, cfg.layer, cfg.neuron, tokens, targets, cfg.value, cfg.n_random, cfg.seed)
