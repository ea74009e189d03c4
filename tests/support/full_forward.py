"""The transcoder evaluation's CE numbers computed the slow way, as the reference for the fast one.

:func:`full_forward_ce` runs every intervention (each layer's MLP spliced, zero-ablated and
mean-ablated, alone and all at once) as a full forward from the tokens, 3 x layers + 4 per
batch: how :mod:`interp.transcoders.evaluation` computed them before its forwards started at
the intervened layer. ``tests/integration/test_transcoders_eval.py`` checks the fast path
against it and ``benchmarks/transcoder_eval.py`` times both.
"""

from __future__ import annotations

from interp.interventions import ablate_mlps
from interp.transcoders import splice


def full_forward_ce(model, transcoders, tokens, means, batch_size):
    """The CE numbers of the evaluation by full forwards from the tokens, 3 x layers + 4 per
    batch: how interp computed them before the forwards started at the intervened layer."""

    def ce(batch):
        return model(batch, return_type="loss").item()

    layers = list(transcoders)
    vectors = {layer: means[layer].float() for layer in layers}
    sums = {"clean": 0.0, "splice_all": 0.0, "zero_all": 0.0, "mean_all": 0.0,
            "splice": dict.fromkeys(layers, 0.0), "zero": dict.fromkeys(layers, 0.0), "mean": dict.fromkeys(layers, 0.0)}
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start : start + batch_size]
        w = len(batch)
        sums["clean"] += w * ce(batch)
        for layer in layers:
            with splice(model, {layer: transcoders[layer]}):
                sums["splice"][layer] += w * ce(batch)
            with ablate_mlps(model, {layer: None}):
                sums["zero"][layer] += w * ce(batch)
            with ablate_mlps(model, {layer: vectors[layer]}):
                sums["mean"][layer] += w * ce(batch)
        with splice(model, transcoders):
            sums["splice_all"] += w * ce(batch)
        with ablate_mlps(model, dict.fromkeys(layers)):
            sums["zero_all"] += w * ce(batch)
        with ablate_mlps(model, vectors):
            sums["mean_all"] += w * ce(batch)
    n = len(tokens)
    return {k: ({kk: x / n for kk, x in v.items()} if isinstance(v, dict) else v / n) for k, v in sums.items()}
