"""One codebook bottleneck: snap an activation to the combination of its top-k codes.

Follows Tamkin, Taufeeque & Goodman (2023), "Codebook Features: Sparse and Discrete
Interpretability for Neural Networks". For an activation ``x`` (one vector per token, or
one per attention head at ``z``):

1. normalise: ``x / ||x||`` (the codes are normalised the same way for scoring);
2. score every code ``c_i`` by cosine similarity ``<x/||x||, c_i/||c_i||>``;
3. keep the ``k`` best codes and output their **mean** ``(1/k) * sum_i c_i``.

The output is made of the raw (unnormalised) code vectors, so codes live in the
activation's own space and a codebook whose codes equal the inputs is the identity at
``k = 1``. The mean (as the reference implementation computes it, ``sum / k``) keeps the
output's scale independent of ``k``; at ``k = 1`` mean and sum agree.

Gradients: straight-through for the input (``d out / d x = I``), and the codes receive
the downstream gradient of the codes they selected. :meth:`Bottleneck.codebook_loss` is
the reference implementation's ``aeloss``: the squared reconstruction error
``||mean(codes) - x||^2`` with ``x`` detached, so it moves codes toward the inputs that
select them (k-means-like) without pulling the network toward the codes; an optional
commitment weight adds the VQ-VAE term that does pull the input.

A codebook at a per-head site has one codebook per head (``n_groups`` = heads); a code
is then named by its *flat id* ``head * n_codes + code``, so every site names codes by
one integer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from interp.errors import ConfigError

logger = logging.getLogger(__name__)

EPS = 1e-8


@dataclass
class BottleneckConfig:
    """Shape and behaviour of one codebook bottleneck."""

    d: int
    """Dimension of each vector the bottleneck snaps (d_model, or d_head at z)."""
    n_codes: int
    """Codes per codebook (per head at z)."""
    k: int = 1
    """Codes kept per vector; the output is their mean."""
    n_groups: int = 1
    """Independent codebooks side by side: the number of heads at z, else 1."""

    def __post_init__(self) -> None:
        if self.d < 1 or self.n_codes < 1 or self.n_groups < 1:
            raise ConfigError(f"d, n_codes and n_groups must be >= 1, got {self.d}, {self.n_codes}, {self.n_groups}")
        if not 1 <= self.k <= self.n_codes:
            raise ConfigError(f"k must be between 1 and n_codes={self.n_codes}, got k={self.k}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Snap:
    """What one forward pass of a bottleneck chose."""

    output: Float[Tensor, "... group d"]
    combo: Float[Tensor, "... group d"]
    """The mean of the chosen codes (differentiable with respect to the codebook)."""
    codes: Int[Tensor, "... group k"]
    """Chosen code per slot, within its group's codebook (0..n_codes-1)."""
    scores: Float[Tensor, "... group k"]
    """Cosine similarity of each chosen code with the input."""


class Bottleneck(nn.Module):
    """A codebook of ``n_groups x n_codes`` vectors and the top-k snap onto it."""

    def __init__(self, cfg: BottleneckConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.codebook = nn.Parameter(torch.randn(cfg.n_groups, cfg.n_codes, cfg.d) / cfg.d**0.5)
        self.register_buffer("counts", torch.zeros(cfg.n_groups, cfg.n_codes, dtype=torch.long), persistent=False)

    @property
    def n_codes(self) -> int:
        return self.cfg.n_codes

    @property
    def n_flat(self) -> int:
        """Number of flat code ids (groups x codes)."""
        return self.cfg.n_groups * self.cfg.n_codes

    def scores(self, x: Float[Tensor, "... group d"]) -> Float[Tensor, "... group code"]:
        """Cosine similarity of every input vector with every code of its group."""
        xn = x / (x.norm(dim=-1, keepdim=True) + EPS)
        cn = self.codebook / (self.codebook.norm(dim=-1, keepdim=True) + EPS)
        return torch.einsum("...gd,gcd->...gc", xn, cn)

    def forward(
        self,
        x: Float[Tensor, "... group d"],
        force: Tensor | Sequence[int] | None = None,
        force_mask: Tensor | None = None,
    ) -> Snap:
        """Snap ``x`` onto its top-k codes.

        Args:
            x: activations whose second-to-last axis is the group (size 1 unless per-head).
            force: flat code ids that must be in the active set (steering); within each
                group at most ``k`` may be forced, the other slots keep the best codes.
            force_mask: boolean over ``x.shape[:-2]`` (e.g. ``batch pos``) saying where to
                force; None forces everywhere.
        """
        if x.shape[-2:] != (self.cfg.n_groups, self.cfg.d):
            raise ConfigError(
                f"bottleneck expects [..., {self.cfg.n_groups}, {self.cfg.d}] activations, got {tuple(x.shape)}"
            )
        with torch.no_grad():
            sim = self.scores(x.detach())
            ranking = sim
            if force is not None and len(force):
                ranking = self._boost(sim, force, force_mask)
            codes = ranking.topk(self.cfg.k, dim=-1).indices
            chosen = sim.gather(-1, codes)
        groups = torch.arange(self.cfg.n_groups, device=x.device)[:, None]
        combo = self.codebook[groups, codes].mean(dim=-2)
        output = combo + (x - x.detach())
        if self.training:
            with torch.no_grad():
                flat = (codes + groups * self.cfg.n_codes).flatten()
                self.counts.view(-1).index_add_(0, flat, torch.ones_like(flat))
        return Snap(output=output, combo=combo, codes=codes, scores=chosen)

    def _boost(self, sim: Tensor, force: Tensor | Sequence[int], force_mask: Tensor | None) -> Tensor:
        force = torch.as_tensor(force, device=sim.device, dtype=torch.long).flatten()
        if force.min() < 0 or force.max() >= self.n_flat:
            raise ConfigError(f"forced code ids must be in 0..{self.n_flat - 1}, got {force.tolist()}")
        group, code = force // self.cfg.n_codes, force % self.cfg.n_codes
        per_group = torch.bincount(group, minlength=self.cfg.n_groups)
        if per_group.max() > self.cfg.k:
            raise ConfigError(
                f"cannot force {int(per_group.max())} codes into one codebook with k={self.cfg.k}; "
                "force at most k codes per codebook (per head at z)"
            )
        boost = torch.zeros(self.cfg.n_groups, self.cfg.n_codes, device=sim.device, dtype=sim.dtype)
        boost[group, code] = 10.0  # cosine scores lie in [-1, 1]
        if force_mask is None:
            return sim + boost
        mask = force_mask.to(sim.device, sim.dtype)[..., None, None]
        return sim + mask * boost

    def codebook_loss(self, snap: Snap, x: Tensor, commitment: float = 0.0) -> Tensor:
        """Mean over vectors of ``||combo - x.detach()||^2`` (+ commitment on ``x``)."""
        loss = (snap.combo - x.detach()).pow(2).sum(-1).mean()
        if commitment:
            loss = loss + commitment * (x - snap.combo.detach()).pow(2).sum(-1).mean()
        return loss

    @torch.no_grad()
    def init_kmeans(self, x: Float[Tensor, "n group d"], iters: int = 20, seed: int = 0) -> None:
        """Spherical k-means per group: k-means++ seeds, assignment by cosine, each code set to
        its cluster's mean. Clusters left empty are re-seeded with random inputs, so every
        code starts alive.
        """
        n = x.shape[0]
        if n < self.cfg.n_codes:
            raise ConfigError(
                f"k-means needs at least n_codes={self.cfg.n_codes} activation vectors, got {n}; "
                "cache more tokens (kmeans_tokens)"
            )
        gen = torch.Generator().manual_seed(seed)
        for g in range(self.cfg.n_groups):
            data = x[:, g].float()
            unit = data / (data.norm(dim=-1, keepdim=True) + EPS)
            centres = data[self._plus_plus(unit, gen)].clone()
            for _ in range(iters):
                cn = centres / (centres.norm(dim=-1, keepdim=True) + EPS)
                assign = (unit @ cn.T).argmax(-1)
                sums = torch.zeros_like(centres).index_add_(0, assign, data)
                size = torch.bincount(assign, minlength=self.cfg.n_codes)
                alive = size > 0
                centres[alive] = sums[alive] / size[alive, None]
                dead = (~alive).nonzero().flatten()
                if len(dead):
                    centres[dead] = data[torch.randint(n, (len(dead),), generator=gen)]
            self.codebook.data[g] = centres.to(self.codebook.dtype)

    def _plus_plus(self, unit: Tensor, gen: torch.Generator) -> Tensor:
        """k-means++ seeding with cosine distance: each new seed is drawn with probability
        proportional to its squared distance from the nearest seed so far, so rare but
        distinct directions get codes instead of the most frequent ones getting several."""
        n = unit.shape[0]
        first = int(torch.randint(n, (1,), generator=gen))
        picks = [first]
        dist = (1 - unit @ unit[first]).clamp(min=0)
        for _ in range(self.cfg.n_codes - 1):
            weights = dist.pow(2)
            if weights.sum() <= 0:  # fewer distinct directions than codes: fill at random
                nxt = int(torch.randint(n, (1,), generator=gen))
            else:
                nxt = int(torch.multinomial(weights, 1, generator=gen))
            picks.append(nxt)
            dist = torch.minimum(dist, (1 - unit @ unit[nxt]).clamp(min=0))
        return torch.tensor(picks)

    @torch.no_grad()
    def replace_dead(self, x: Float[Tensor, "n group d"], noise: float = 0.01) -> int:
        """Re-initialise codes unused since the last call to random recent inputs; reset counts.

        Returns how many codes were replaced.
        """
        replaced = 0
        for g in range(self.cfg.n_groups):
            dead = (self.counts[g] == 0).nonzero().flatten()
            if not len(dead):
                continue
            pick = torch.randint(x.shape[0], (len(dead),), device=x.device)
            new = x[pick, g].to(self.codebook.dtype)
            new = new + noise * new.norm(dim=-1, keepdim=True) * torch.randn_like(new) / self.cfg.d**0.5
            self.codebook.data[g, dead] = new
            replaced += len(dead)
        self.counts.zero_()
        if replaced:
            logger.info("replaced %d dead codes", replaced)
        return replaced

    def flat_ids(self, codes: Int[Tensor, "... group k"]) -> Int[Tensor, "... group k"]:
        """Flat code ids (``group * n_codes + code``) of per-group code indices."""
        groups = torch.arange(self.cfg.n_groups, device=codes.device)[:, None]
        return codes + groups * self.cfg.n_codes

    def split(self, flat: Sequence[int] | int) -> list[tuple[int, int]]:
        """(group, code) pairs of flat ids."""
        flat = [flat] if isinstance(flat, int) else list(flat)
        return [(f // self.cfg.n_codes, f % self.cfg.n_codes) for f in flat]
