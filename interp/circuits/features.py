"""What a feature means, for its card in the viewer: top tokens through the unembedding and
the contexts where it fires most (with their spaces, the firing token marked)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from jaxtyping import Int
from torch import Tensor

from interp.circuits.dictionary import Dictionary, as_dictionary
from interp.circuits.graph import Graph
from interp.reports import token_pieces
from interp.transcoders.clt import CrossLayerTranscoder


@torch.no_grad()
def top_tokens(model, transcoder, feature: int, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` tokens whose logits the feature's decoder row raises most (W_dec[f] @ W_U)."""
    return _top_tokens(model, transcoder.W_dec[feature], k)


@torch.no_grad()
def _top_tokens(model, write: Tensor, k: int) -> list[tuple[str, float]]:
    """The ``k`` tokens whose logits a residual-stream write raises most (``write @ W_U``)."""
    from interp.circuits.attribution import token_str

    logits = write @ model.W_U
    values, idx = torch.topk(logits, min(k, logits.numel()))
    return [(token_str(model, int(i)), float(v)) for v, i in zip(values, idx)]


def context_pieces(model, before: list[int], token: int, after: list[int]) -> tuple[str, str, str]:
    """A window of token ids as readable text cut in three: before, the token, after, each the
    text its tokens add to the window decoded as a whole (:func:`interp.reports.token_pieces`:
    the spaces between words survive). Without a tokenizer, ids as ``<id>``."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return (" ".join(f"<{i}>" for i in before), f"<{token}>", " ".join(f"<{i}>" for i in after))
    pieces = token_pieces(tok, [*before, token, *after])
    return "".join(pieces[: len(before)]), pieces[len(before)], "".join(pieces[len(before) + 1 :])


@torch.no_grad()
def top_contexts(
    model,
    transcoders: Mapping[int, object] | CrossLayerTranscoder | Dictionary,
    features: Iterable[tuple[int, int]],
    tokens: Int[Tensor, "batch pos"],
    k: int = 3,
    window: int = 8,
    after: int = 3,
) -> dict[tuple[int, int], list[dict]]:
    """For each ``(layer, feature)``, its ``k`` highest activations in ``tokens``: dicts with
    ``before`` (up to ``window`` tokens of text), ``token`` (where it fires), ``after`` (up to
    ``after`` tokens) and ``value`` (the activation); see :func:`context_pieces`."""
    features = sorted(set(features))
    layers = sorted({layer for layer, _ in features})
    if not features:
        return {}
    d = as_dictionary(model, transcoders)
    names = {d.read_hook(layer) for layer in layers}
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    out: dict[tuple[int, int], list[dict]] = {}
    for layer, feat in features:
        acts = d.encode(layer, cache[d.read_hook(layer)])[..., feat]  # [batch, pos]
        values, flat = torch.topk(acts.flatten(), min(k, acts.numel()))
        rows = []
        for v, i in zip(values.tolist(), flat.tolist()):
            if v <= 0:
                break
            b, p = divmod(i, acts.shape[1])
            seq = tokens[b].tolist()
            left, focus, right = context_pieces(model, seq[max(0, p - window) : p], seq[p], seq[p + 1 : p + 1 + after])
            rows.append({"before": left, "token": focus, "after": right, "value": float(v)})
        out[(layer, feat)] = rows
    return out


def describe_features(
    model,
    transcoders: Mapping[int, object] | CrossLayerTranscoder | Dictionary,
    graph: Graph,
    context_tokens: Int[Tensor, "batch pos"] | None = None,
    k: int = 5,
) -> dict[str, dict]:
    """``feature_info`` for every feature node of ``graph`` (keyed by node id): the top tokens
    of its total write (a cross-layer transcoder's feature: summed over its output layers, which
    ``writes_to`` lists) and, given ``context_tokens``, its top contexts."""
    d = as_dictionary(model, transcoders)
    keys = {(n.layer, n.index) for n in graph.nodes if n.kind == "feature"}
    contexts = top_contexts(model, d, keys, context_tokens) if context_tokens is not None else {}
    info = {}
    for i, n in enumerate(graph.nodes):
        if n.kind != "feature":
            continue
        info[graph.node_id(i)] = {
            "top_tokens": _top_tokens(model, d.total_write(n.layer, torch.tensor([n.index]))[0], k),
            "contexts": contexts.get((n.layer, n.index), []),
        }
        if d.kind == "cross-layer":
            info[graph.node_id(i)]["writes_to"] = d.output_layers(n.layer)
    return info
