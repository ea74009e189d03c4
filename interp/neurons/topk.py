"""Top and bottom k of ``vectors @ W`` per row, without materialising the product.

The search behind :func:`interp.neurons.decode`: chunked over rows and columns, a two-level
extreme search (64-column block extremes first), and a bfloat16 pass whose candidates are
rescored in float32 and *proven* complete with a rounding-error bound (``method="certified"``),
or float32 throughout (``method="exact"``). Both give the float32 answer.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import ConfigError

logger = logging.getLogger(__name__)

Method = Literal["certified", "exact"]

_BLOCK = 64
"""Vocabulary block width of the two-level top-k (block extremes first, then elements)."""
_U_BF16 = 2.0**-8
"""Unit roundoff of bfloat16 (8 significand bits, round to nearest)."""


def _extremes(scores: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top ``k`` and bottom ``k`` of each row, reading block extremes first.

    Every element of a row's top ``k`` lies in one of the ``k`` blocks with the largest
    maxima (or in the few tail columns past the last whole block), and likewise for the
    bottom, so ``topk`` runs only over those blocks' elements. Returns
    ``(top_values, top_ids, bottom_values, bottom_ids)``.
    """
    n, width = scores.shape
    k = min(k, width)
    n_blocks = width // _BLOCK
    if n_blocks <= 2 * k or width < 8 * _BLOCK:
        top = scores.topk(k, dim=1)
        bottom = scores.topk(k, dim=1, largest=False)
        return top.values, top.indices, bottom.values, bottom.indices
    scores = scores.contiguous()
    main = n_blocks * _BLOCK
    blocks = scores.as_strided((n, n_blocks, _BLOCK), (width, _BLOCK, 1))
    tail = scores[:, main:]
    out = []
    for largest in (True, False):
        # amax and amin separately: two reductions beat one aminmax on CPU (about 4x for
        # bfloat16 in torch 2.13).
        extreme = blocks.amax(dim=2) if largest else blocks.amin(dim=2)
        chosen = extreme.topk(k, dim=1, largest=largest).indices
        values = blocks.gather(1, chosen[:, :, None].expand(n, k, _BLOCK)).reshape(n, k * _BLOCK)
        best = torch.cat([values, tail], dim=1).topk(k, dim=1, largest=largest)
        position = best.indices
        in_blocks = position < k * _BLOCK
        block_ids = chosen.gather(1, torch.where(in_blocks, position // _BLOCK, 0))
        ids = torch.where(in_blocks, block_ids * _BLOCK + position % _BLOCK, main + position - k * _BLOCK)
        out += [best.values, ids]
    return out[0], out[1], out[2], out[3]


def _merge(old: tuple[Tensor, Tensor] | None, new: tuple[Tensor, Tensor], k: int, largest: bool) -> tuple[Tensor, Tensor]:
    if old is None:
        return new
    values = torch.cat([old[0], new[0].to(old[0].dtype)], dim=1)
    indices = torch.cat([old[1], new[1]], dim=1)
    best = values.topk(k, dim=1, largest=largest)
    return best.values, indices.gather(1, best.indices)


def _chunked_extremes(rows: Tensor, W: Tensor, k: int, vocab_chunk: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top and bottom ``k`` of ``rows @ W`` (in ``rows``' dtype), chunked over the vocabulary."""
    top = bottom = None
    for start in range(0, W.shape[1], vocab_chunk):
        t_v, t_i, b_v, b_i = _extremes(rows @ W[:, start : start + vocab_chunk], k)
        top = _merge(top, (t_v, t_i + start), k, True)
        bottom = _merge(bottom, (b_v, b_i + start), k, False)
    return top[0], top[1], bottom[0], bottom[1]


def _rescore(rows: Tensor, W_T: Tensor, ids: Tensor) -> Tensor:
    """Float32 scores of the given token ids for each row: ``rows[i] @ W_T[ids[i]].T``."""
    n, width = ids.shape
    gathered = W_T.index_select(0, ids.reshape(-1)).view(n, width, -1)
    return torch.bmm(gathered, rows[:, :, None]).squeeze(2)


def _certified_rows(
    rows: Tensor, W: Tensor, W16: Tensor, W_T: Tensor, W_err: float, W_norm: float,
    k: int, margin: int, vocab_chunk: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Top and bottom ``k`` via bfloat16 candidates, float32 rescoring and a proof.

    With ``v16``/``W16`` the rounded inputs, a bfloat16 score differs from the float32
    one by at most ``||v - v16|| max_t ||W_t|| + ||v16|| max_t ||W_t - W16_t||`` (the
    rounding of the inputs, by Cauchy-Schwarz on the measured rounding errors), plus
    ``d 2^-23 ||v16|| max_t ||W16_t||`` (float32 accumulation) plus ``u |score|`` (the
    bfloat16 output). The ``k + margin`` best approximate scores are kept, sorted. The
    first ``r`` are rescored in float32; every other token's approximate score is at most
    the ``(r+1)``-th, so if the ``k``-th rescored score beats that by more than the bound,
    no other token can be in the top ``k``. ``r`` grows in rounds (``k + 6``, ``2k``,
    ``k + margin``), each rescoring only the new candidates of the rows still unproven;
    rows without a proof after the last round are recomputed in float32.
    """
    kk = min(k + margin, W.shape[1])
    rows16 = rows.to(torch.bfloat16)
    t_v, t_i, b_v, b_i = _chunked_extremes(rows16, W16, kk, vocab_chunk)
    norm16 = rows16.float().norm(dim=1)
    err = (rows - rows16.float()).norm(dim=1) * W_norm + norm16 * W_err
    err = err + rows.shape[1] * 2.0**-23 * norm16 * (W_norm + W_err)
    err = err + _U_BF16 * torch.maximum(t_v[:, 0].float().abs(), b_v[:, 0].float().abs())
    err = err * 1.01 + 1e-30
    out: list[Tensor] = []
    failed = torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
    rounds = sorted({min(r, kk) for r in (k + 6, 2 * k, kk)})
    for approx, ids, largest in ((t_v.float(), t_i, True), (b_v.float(), b_i, False)):
        sign = 1.0 if largest else -1.0
        values = torch.empty(rows.shape[0], k, device=rows.device)
        indices = torch.empty(rows.shape[0], k, dtype=torch.long, device=rows.device)
        exact = torch.empty(rows.shape[0], kk, device=rows.device)
        todo = torch.arange(rows.shape[0], device=rows.device)
        done = 0
        for r in rounds:
            if not len(todo):
                break
            # Incremental: only the candidates not rescored in an earlier round.
            exact[todo, done:r] = _rescore(rows[todo], W_T, ids[todo, done:r])
            done = r
            best = exact[todo, :r].topk(k, dim=1, largest=largest)
            values[todo] = best.values
            indices[todo] = ids[todo].gather(1, best.indices)
            if r == W.shape[1]:
                todo = todo[:0]
                break
            proven = sign * (best.values[:, -1] - approx[todo, r]) > err[todo] if r < kk else \
                sign * (best.values[:, -1] - approx[todo, -1]) > err[todo]
            todo = todo[~proven]
        failed[todo] = True
        out += [values, indices]
    rows_failed = failed.nonzero().flatten()
    if len(rows_failed):
        redo = _chunked_extremes(rows[rows_failed], W, k, vocab_chunk)
        for slot in range(4):
            out[slot][rows_failed] = redo[slot]
    return out[0], out[1], out[2], out[3], len(rows_failed)


def topk_scores(
    vectors: Float[Tensor, "n d_model"],
    W: Float[Tensor, "d_model d_vocab"],
    k: int = 10,
    method: Method = "certified",
    neuron_chunk: int = 1024,
    vocab_chunk: int = 65536,
    margin: int = 24,
) -> tuple[Float[Tensor, "n k"], Int[Tensor, "n k"], Float[Tensor, "n k"], Int[Tensor, "n k"]]:
    """Top and bottom ``k`` of ``vectors @ W`` per row without materialising the product.

    Peak extra memory is about ``neuron_chunk * vocab_chunk * 6`` bytes. Returns
    ``(top_values, top_ids, bottom_values, bottom_ids)``, each sorted from the extreme.
    """
    if k < 1 or k > W.shape[1]:
        raise ConfigError(f"k must be in [1, d_vocab={W.shape[1]}], got {k}")
    if method not in ("certified", "exact"):
        raise ConfigError(f"method must be 'certified' or 'exact', got {method!r}")
    vectors = vectors.float()
    W = W.float()
    results: list[tuple[Tensor, ...]] = []
    uncertified = 0
    if method == "certified":
        W16 = W.to(torch.bfloat16)
        W_T = W.T.contiguous()
        W_norm = float(W.norm(dim=0).max())
        W_err = float((W - W16.float()).norm(dim=0).max())
    for start in range(0, vectors.shape[0], neuron_chunk):
        rows = vectors[start : start + neuron_chunk]
        if method == "exact":
            results.append(_chunked_extremes(rows, W, k, vocab_chunk))
        else:
            *parts, failed = _certified_rows(rows, W, W16, W_T, W_err, W_norm, k, margin, vocab_chunk)
            uncertified += failed
            results.append(tuple(parts))
    if uncertified:
        logger.info("%d of %d rows needed the float32 fallback", uncertified, vectors.shape[0])
    return tuple(torch.cat([r[i] for r in results]) for i in range(4))  # type: ignore[return-value]


