"""A set of codebook bottlenecks and the scoped hooks that insert them into a model.

:class:`Codebooks` holds one :class:`~interp.codebooks.bottleneck.Bottleneck` per hook
point. :func:`inserted` adds them to any transformer-lens ``HookedTransformer`` for the
length of a ``with`` block (hooks are removed on exit, even on error) and yields a
:class:`CodebookRun` that records what each bottleneck chose in the last forward pass::

    books = Codebooks.create(model, sites=["mlp_out"], layers=[1], n_codes=96, k=1)
    with inserted(model, books) as run:
        loss = model(tokens, return_type="loss")
    run.codes["blocks.1.hook_mlp_out"]   # [batch, pos, group, k] flat code ids

Sites (TransformerLens' names, validated against the model's own hook points with
:mod:`interp.hooks`): ``mlp_out`` (MLP output), ``attn_out`` (attention output), ``z``
(per-head attention output before ``W_O``, one codebook per head; interp's older name
``attn_z`` is accepted) and ``resid_post`` (block output), or their hook names
(``hook_mlp_out``, ``blocks.2.attn.hook_z``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from interp import hooks as H
from interp.codebooks.bottleneck import Bottleneck, BottleneckConfig, Snap
from interp.config import parse_layers
from interp.errors import ConfigError, StoreError

CodebookSite = Literal["mlp_out", "attn_out", "z", "resid_post"]
CODEBOOK_SITES: tuple[str, ...] = get_args(CodebookSite)


def codebook_site(entry: str) -> CodebookSite:
    """The codebook site an entry of ``--sites`` names (a site, an alias such as ``attn_z``, or a
    hook name of one); a ConfigError names the choices otherwise."""
    try:
        site = H.site_named(entry)
    except H.UnknownHookError:
        site = None
    if site not in CODEBOOK_SITES:
        raise ConfigError(
            f"codebooks sit at {', '.join(CODEBOOK_SITES)} (z per head; interp's older name attn_z is accepted) or at "
            f"their hook names (e.g. hook_mlp_out, blocks.2.attn.hook_z); got {entry!r}"
        )
    return site  # type: ignore[return-value]
CODEBOOKS_FILE = "codebooks.safetensors"
CODEBOOKS_CONFIG = "codebooks.json"

Positions = Literal["all", "last"] | Sequence[int]


def _key(hook: str) -> str:
    return hook.replace(".", "__")


class Codebooks(nn.Module):
    """Bottlenecks keyed by hook name; an ``nn.Module`` so optimisers and ``.to`` work."""

    def __init__(self, configs: Mapping[str, BottleneckConfig]) -> None:
        super().__init__()
        self.configs = dict(configs)
        self.books = nn.ModuleDict({_key(h): Bottleneck(c) for h, c in self.configs.items()})
        self.forced: dict | None = None
        """Set by :func:`interp.codebooks.training.load_trained` when ``force`` used them on a model
        other than the one they were trained on (the record of both fingerprints)."""

    @classmethod
    def create(
        cls,
        model,
        sites: Sequence[str],
        layers: str | int | Sequence[int] | None,
        n_codes: int,
        k: int = 1,
    ) -> Codebooks:
        """Bottlenecks at ``sites`` x ``layers`` of ``model``.

        ``layers`` is anything :func:`interp.config.parse_layers` reads: ``'0-3'``, ``'1,2'``,
        an int, a list of ints, or None for every layer.
        """
        chosen = parse_layers(layers, model.cfg.n_layers)
        configs = {}
        for entry in sites:
            site = codebook_site(entry)
            for hook in H.resolve(model, entry, chosen):
                if site == "z":
                    cfg = BottleneckConfig(d=model.cfg.d_head, n_codes=n_codes, k=k, n_groups=model.cfg.n_heads)
                else:
                    cfg = BottleneckConfig(d=model.cfg.d_model, n_codes=n_codes, k=k)
                configs[hook] = cfg
        books = cls(configs)
        return books.to(next(model.parameters()).device)

    @property
    def hooks(self) -> list[str]:
        return list(self.configs)

    def __getitem__(self, hook: str) -> Bottleneck:
        if hook not in self.configs:
            raise H.UnknownHookError(hook, self.configs, what="codebook at hook point")
        return self.books[_key(hook)]

    def items(self) -> Iterator[tuple[str, Bottleneck]]:
        for hook in self.configs:
            yield hook, self.books[_key(hook)]

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write ``codebooks.safetensors`` and ``codebooks.json`` atomically."""
        from safetensors.torch import save_file

        from interp.io import atomic_write, atomic_write_text

        directory = Path(directory)
        state = {hook: book.codebook.detach().cpu().contiguous() for hook, book in self.items()}
        with atomic_write(directory / CODEBOOKS_FILE) as tmp:
            save_file(state, str(tmp))
        meta = {"sites": {h: c.to_dict() for h, c in self.configs.items()}, **(extra or {})}
        atomic_write_text(directory / CODEBOOKS_CONFIG, json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device | None = None) -> Codebooks:
        from safetensors.torch import load_file

        from interp.io import require_complete

        directory = Path(directory)
        require_complete(directory)
        meta_path, weights = directory / CODEBOOKS_CONFIG, directory / CODEBOOKS_FILE
        if not meta_path.is_file() or not weights.is_file():
            raise StoreError(
                f"{directory} holds no codebooks ({CODEBOOKS_CONFIG} and {CODEBOOKS_FILE}); "
                "write them with `interp codebook train --out DIR`"
            )
        meta = json.loads(meta_path.read_text())
        books = cls({h: BottleneckConfig(**c) for h, c in meta["sites"].items()})
        state = load_file(str(weights))
        for hook, book in books.items():
            book.codebook.data.copy_(state[hook])
        return books.to(device) if device is not None else books


@dataclass
class CodebookRun:
    """What the bottlenecks chose in the last forward pass inside :func:`inserted`."""

    codes: dict[str, Tensor] = field(default_factory=dict)
    """hook -> flat code ids ``[batch, pos, group, k]``."""
    scores: dict[str, Tensor] = field(default_factory=dict)
    """hook -> cosine similarity of each chosen code ``[batch, pos, group, k]``."""
    inputs: dict[str, Tensor] = field(default_factory=dict)
    """hook -> the activation before snapping ``[batch, pos, group, d]`` (when kept)."""
    losses: dict[str, Tensor] = field(default_factory=dict)
    """hook -> codebook loss of the last forward (when computed)."""

    def __repr__(self) -> str:
        shapes = ", ".join(f"{hook} {tuple(codes.shape)}" for hook, codes in list(self.codes.items())[:3])
        more = f", ... (+{len(self.codes) - 3} more)" if len(self.codes) > 3 else ""
        return f"CodebookRun(codes at {len(self.codes)} hook(s){': ' + shapes if shapes else ''}{more})"

    def codebook_loss(self) -> Tensor:
        """Sum of the bottlenecks' codebook losses in the last forward."""
        if not self.losses:
            raise RuntimeError("no codebook loss recorded: enter inserted(..., loss=True) and run a forward pass")
        return torch.stack(list(self.losses.values())).sum()


def _force_mask(shape: torch.Size, positions: Positions, device) -> Tensor | None:
    batch, pos = shape[0], shape[1]
    if isinstance(positions, str):
        if positions == "all":
            return None
        if positions == "last":
            mask = torch.zeros(batch, pos, dtype=torch.bool, device=device)
            mask[:, -1] = True
            return mask
        raise ConfigError(f"positions must be 'all', 'last' or a list of positions, got {positions!r}")
    mask = torch.zeros(batch, pos, dtype=torch.bool, device=device)
    index = torch.as_tensor(list(positions), dtype=torch.long, device=device)
    mask[:, index] = True
    return mask


@contextlib.contextmanager
def inserted(
    model,
    codebooks: Codebooks,
    force: Mapping[str, Sequence[int]] | None = None,
    positions: Positions = "all",
    loss: bool = False,
    commitment: float = 0.0,
    keep_inputs: bool = False,
    only: Sequence[str] | None = None,
) -> Iterator[CodebookRun]:
    """Insert the bottlenecks into ``model`` for the ``with`` block.

    Args:
        force: hook -> flat code ids forced into that bottleneck's active set (steering).
        positions: where forcing applies: ``"all"``, ``"last"`` or a list of positions.
        loss: compute each bottleneck's codebook loss (training).
        commitment: weight of the VQ-VAE commitment term in that loss.
        keep_inputs: keep the pre-snap activations (k-means, dead-code replacement).
        only: insert just these hooks (default: all of ``codebooks``).
    """
    hooks = list(only) if only is not None else codebooks.hooks
    H.validate(model, hooks)
    for hook in force or {}:
        if hook not in hooks:
            raise H.UnknownHookError(hook, hooks, what="inserted codebook at hook point")
    run = CodebookRun()

    def make(name: str):
        book = codebooks[name]
        grouped = name.endswith("attn.hook_z")
        forced = (force or {}).get(name)

        def fn(act: Tensor, hook=None) -> Tensor:  # noqa: ARG001 - transformer-lens passes the HookPoint
            x = act if grouped else act.unsqueeze(-2)
            mask = _force_mask(x.shape, positions, x.device) if forced is not None else None
            snap: Snap = book(x, force=forced, force_mask=mask)
            run.codes[name] = book.flat_ids(snap.codes)
            run.scores[name] = snap.scores
            if keep_inputs:
                run.inputs[name] = x.detach()
            if loss:
                run.losses[name] = book.codebook_loss(snap, x, commitment)
            return snap.output if grouped else snap.output.squeeze(-2)

        return fn

    with model.hooks(fwd_hooks=[(hook, make(hook)) for hook in hooks]):
        yield run
