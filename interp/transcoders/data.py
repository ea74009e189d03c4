"""Feeding transcoders: (input, target) pairs per trained module from an activation source.

A :class:`Wiring` says where one trained module sits in the model: its name in runs and
checkpoints (``key``), the layers it covers, the hooks it reads and the hooks it predicts.
A per-layer transcoder is wired to one layer (``layer_L``: the MLP input to the MLP output;
the input is ``ln2_normalized``, or ``resid_mid`` in post-norm blocks, whose MLP reads the
residual stream itself: :func:`interp.hooks.mlp_input_site`); a cross-layer transcoder is one
module wired to all its layers (``clt``: each layer's residual stream or normalised MLP input
to each layer's MLP output), and its ``x`` and ``y`` are the layers' rows stacked,
``[batch, n_layers, d]``.

The trainer consumes an iterator of ``{key: (x, y)}`` dicts, one entry per module, the same
rows for every module because they come from one forward pass. :class:`PairedBatches` builds that iterator
from any :class:`interp.cache.ActivationSource` (the on-disk ``ActivationStore`` or
``StreamingActivations`` running the model on the fly) and remembers its position
``(epoch, batch)`` so that a resumed run sees exactly the batches it would have seen.
:class:`InMemoryActivations` is a source over tensors you already hold.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import ConfigError, StoreError
from interp.hooks import MlpInputSite, hook_name, mlp_input_site

Pair = tuple[Float[Tensor, "batch *stack d_in"], Float[Tensor, "batch *stack d_out"]]
PairBatch = dict[str, Pair]

CLT_KEY = "clt"
"""The key (and run sub-directory) of a cross-layer transcoder."""
InputSite = Literal["resid_mid", "ln2_normalized"]
"""What a cross-layer transcoder reads at each layer."""


@dataclass(frozen=True)
class Wiring:
    """Where one trained module sits in the model."""

    key: str
    """Its name in runs, checkpoints and reports (``layer_3``, ``clt``)."""
    layers: tuple[int, ...]
    """The model layers it covers, ascending."""
    hooks_in: tuple[str, ...]
    """The hook it reads at each of those layers."""
    hooks_out: tuple[str, ...]
    """The hook it predicts at each of those layers."""
    stacked: bool = False
    """True when ``x`` and ``y`` are the layers' rows stacked, ``[batch, n_layers, d]`` (a
    cross-layer module); False for ``[batch, d]`` (one layer)."""

    def pair(self, acts: dict[str, Tensor], rows: slice) -> tuple[Tensor, Tensor]:
        """``(x, y)`` for this module from one batch's activations (``rows`` of every hook)."""
        if not self.stacked:
            return acts[self.hooks_in[0]][rows], acts[self.hooks_out[0]][rows]
        x = torch.stack([acts[h][rows] for h in self.hooks_in], 1)
        return x, torch.stack([acts[h][rows] for h in self.hooks_out], 1)


def layer_key(layer: int) -> str:
    """The name a layer's transcoder goes by in runs, checkpoints and reports."""
    return f"layer_{layer}"


def layer_hooks(layer: int, input_site: MlpInputSite = "ln2_normalized") -> tuple[str, str]:
    """``(input hook, output hook)`` of the MLP transcoder of ``layer``; ``input_site`` is where
    the model's MLP reads (:func:`interp.hooks.mlp_input_site`: ``resid_mid`` in post-norm blocks)."""
    return hook_name(input_site, layer), hook_name("mlp_out", layer)


def model_layer_hooks(model, layer: int) -> tuple[str, str]:
    """``(input hook, output hook)`` of the MLP of ``layer`` in ``model`` (its architecture says where the MLP reads)."""
    return layer_hooks(layer, mlp_input_site(model.cfg.original_architecture))


def mlp_input_hooks(layer: int) -> tuple[str, ...]:
    """Every hook a per-layer transcoder of ``layer`` may read, whatever the architecture."""
    return tuple(layer_hooks(layer, site)[0] for site in get_args(MlpInputSite))


def layer_wiring(layer: int, input_site: MlpInputSite = "ln2_normalized") -> Wiring:
    """A per-layer transcoder of ``layer``: MLP input to MLP output."""
    hin, hout = layer_hooks(layer, input_site)
    return Wiring(layer_key(layer), (layer,), (hin,), (hout,))


def cross_layer_wiring(layers: Sequence[int], input_site: InputSite = "resid_mid") -> Wiring:
    """A cross-layer transcoder over ``layers``: each layer's ``input_site`` to each layer's MLP output."""
    layers = tuple(sorted(int(layer) for layer in layers))
    if not layers or len(set(layers)) != len(layers):
        raise ConfigError(f"a cross-layer transcoder needs distinct layers, got {list(layers)}")
    return Wiring(
        CLT_KEY, layers, tuple(hook_name(input_site, layer) for layer in layers),
        tuple(hook_name("mlp_out", layer) for layer in layers), stacked=True,
    )


def check_clt_input(input_site: str, mlp_input: MlpInputSite) -> None:
    """Refuse a cross-layer transcoder reading ``ln2_normalized`` on a model whose MLPs read
    ``mlp_input`` = ``resid_mid`` (post-norm blocks, where ``ln2`` normalises the MLP's output)."""
    if input_site == "ln2_normalized" and mlp_input != "ln2_normalized":
        raise ConfigError(
            "--input-site ln2_normalized reads blocks.L.ln2.hook_normalized, which in this model's post-norm blocks "
            "normalises the MLP's output, not its input; use --input-site resid_mid, what the MLP reads there"
        )


def required_hooks(layers: Sequence[int] | Sequence[Wiring], input_site: MlpInputSite = "ln2_normalized") -> list[str]:
    """Every hook the modules read or predict (per-layer transcoders of ``layers``, reading
    ``input_site``, when given ints)."""
    hooks = [h for w in as_wirings(layers, input_site) for h in (*w.hooks_in, *w.hooks_out)]
    return list(dict.fromkeys(hooks))


def as_wirings(layers: Sequence[int] | Sequence[Wiring], input_site: MlpInputSite = "ln2_normalized") -> list[Wiring]:
    """Wirings as they are; layer numbers as per-layer transcoders' wirings (reading ``input_site``)."""
    return [w if isinstance(w, Wiring) else layer_wiring(int(w), input_site) for w in layers]


@dataclass
class _Batch:
    acts: dict[str, Tensor]
    tokens: Tensor


class InMemoryActivations:
    """An activation source over tensors already in memory (``{hook: [n, d]}``).

    Satisfies the :class:`interp.cache.ActivationSource` protocol: ``batches`` yields
    every row once per epoch in an order fixed by ``(seed, epoch)``; a short last batch
    is dropped. (Short last batches of other sources are skipped by :class:`PairedBatches`.)
    """

    def __init__(self, acts: dict[str, Tensor], tokens: Tensor | None = None) -> None:
        lengths = {name: t.shape[0] for name, t in acts.items()}
        if len(set(lengths.values())) != 1:
            raise ConfigError(f"every hook needs the same number of rows, got {lengths}")
        self.acts = {name: t.reshape(t.shape[0], -1) for name, t in acts.items()}
        self.hook_names = list(acts)
        n = next(iter(lengths.values()))
        self.tokens = tokens.reshape(-1) if tokens is not None else torch.zeros(n, dtype=torch.long)

    def widths(self) -> dict[str, int]:
        return {name: t.shape[1] for name, t in self.acts.items()}

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def batches(self, batch_size: int, *, seed: int = 0, epoch: int = 0, device=None) -> Iterator[_Batch]:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(self), generator=generator)
        for start in range(0, len(self) - batch_size + 1, batch_size):
            rows = order[start : start + batch_size]
            acts = {name: t[rows].to(device) if device else t[rows] for name, t in self.acts.items()}
            yield _Batch(acts, self.tokens[rows])


class PairedBatches:
    """Endless ``{key: (x, y)}`` batches from a source, epoch after epoch, resumable.

    ``modules`` are :class:`Wiring` s (or layer numbers: per-layer transcoders of those layers).
    ``position`` is ``(epoch, batch)`` of the next batch; pass it back as ``start`` to
    continue exactly there. ``shard=(rank, world)`` keeps only this rank's contiguous
    share of each batch's rows (data parallelism).
    """

    def __init__(
        self,
        source,
        modules: Sequence[int] | Sequence[Wiring],
        batch_size: int,
        *,
        seed: int = 0,
        start: tuple[int, int] = (0, 0),
        shard: tuple[int, int] = (0, 1),
        device=None,
    ) -> None:
        wirings = as_wirings(modules)
        missing = [h for h in required_hooks(wirings) if h not in source.hook_names]
        if missing:
            raise StoreError(
                f"the activation source lacks {missing}; it holds {source.hook_names}. "
                "Cache the input (ln2_normalized; resid_mid on post-norm models such as OLMo 2, or for a "
                "cross-layer transcoder reading it) and the output (mlp_out) of every layer you train."
            )
        if len(source) < batch_size:
            raise StoreError(f"the activation source holds {len(source)} rows, fewer than one batch of {batch_size}")
        rank, world = shard
        if batch_size % world:
            raise ConfigError(f"batch_size {batch_size} must divide evenly over {world} processes")
        self.source, self.wirings, self.batch_size, self.seed = source, wirings, batch_size, seed
        self.position = start
        self.shard = shard
        self.device = device

    def __iter__(self) -> Iterator[PairBatch]:
        epoch, skip = self.position
        rank, world = self.shard
        per = self.batch_size // world
        while True:
            produced = 0
            for index, batch in enumerate(self.source.batches(self.batch_size, seed=self.seed, epoch=epoch)):
                if index < skip:
                    continue
                if len(batch.tokens) < self.batch_size:  # a source's short last batch
                    continue
                self.position = (epoch, index + 1)
                produced += 1
                rows = slice(rank * per, (rank + 1) * per)
                pairs = {}
                for wiring in self.wirings:
                    x, y = wiring.pair(batch.acts, rows)
                    if self.device is not None:
                        x, y = x.to(self.device), y.to(self.device)
                    pairs[wiring.key] = (x.float(), y.float())
                yield pairs
            if produced == 0 and skip == 0:
                raise StoreError("the activation source yielded no batches")
            epoch, skip = epoch + 1, 0
            self.position = (epoch, 0)
