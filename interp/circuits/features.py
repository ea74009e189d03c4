"""What a feature means, for hover text: top tokens through the unembedding and the
contexts where it fires most."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from jaxtyping import Int
from torch import Tensor

from interp.circuits.graph import Graph
from interp.hooks import hook_name


@torch.no_grad()
def top_tokens(model, transcoder, feature: int, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` tokens whose logits the feature's decoder row raises most (W_dec[f] @ W_U)."""
    from interp.circuits.attribution import token_str

    logits = transcoder.W_dec[feature] @ model.W_U
    values, idx = torch.topk(logits, min(k, logits.numel()))
    return [(token_str(model, int(i)), float(v)) for v, i in zip(values, idx)]


@torch.no_grad()
def top_contexts(
    model,
    transcoders: dict[int, object],
    features: Iterable[tuple[int, int]],
    tokens: Int[Tensor, "batch pos"],
    k: int = 3,
    window: int = 8,
) -> dict[tuple[int, int], list[tuple[str, float]]]:
    """For each ``(layer, feature)``, its ``k`` highest activations in ``tokens``, each as a
    text window ending at the firing token (shown in [brackets]) and the activation."""
    from interp.circuits.attribution import token_str

    features = sorted(set(features))
    layers = sorted({layer for layer, _ in features})
    if not features:
        return {}
    names = [hook_name("mlp_in", layer) for layer in layers]
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in set(names))
    out: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for layer, feat in features:
        acts = transcoders[layer].encode(cache[hook_name("mlp_in", layer)])[..., feat]  # [batch, pos]
        values, flat = torch.topk(acts.flatten(), min(k, acts.numel()))
        rows = []
        for v, i in zip(values.tolist(), flat.tolist()):
            if v <= 0:
                break
            b, p = divmod(i, acts.shape[1])
            left = [token_str(model, int(t)) for t in tokens[b, max(0, p - window) : p]]
            rows.append(("".join(left) + "[" + token_str(model, int(tokens[b, p])) + "]", float(v)))
        out[(layer, feat)] = rows
    return out


def describe_features(
    model,
    transcoders: dict[int, object],
    graph: Graph,
    context_tokens: Int[Tensor, "batch pos"] | None = None,
    k: int = 5,
) -> dict[str, dict]:
    """``feature_info`` for every feature node of ``graph`` (keyed by node id)."""
    keys = {(n.layer, n.index) for n in graph.nodes if n.kind == "feature"}
    contexts = top_contexts(model, transcoders, keys, context_tokens) if context_tokens is not None else {}
    info = {}
    for i, n in enumerate(graph.nodes):
        if n.kind != "feature":
            continue
        info[graph.node_id(i)] = {
            "top_tokens": top_tokens(model, transcoders[n.layer], n.index, k),
            "contexts": contexts.get((n.layer, n.index), []),
        }
    return info
