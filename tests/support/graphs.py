"""Graphs for the circuit tests: a hand-written one whose influences, pruning and exports are
known by hand (:func:`chain_graph`), and a large one for the viewer tests: the reference model
traced through random TopK transcoders at every layer, a few hundred nodes in seconds
(:func:`reference_graph`)."""

from __future__ import annotations

import torch

from interp.circuits.graph import Graph, HeadPath, Node


def chain_graph() -> Graph:
    """tok0 -> f_a -> logit is strong; tok1 -> f_b -> logit is weak; err -> f_a small;
    head 0.1 carries f_a -> logit to position 1. Vocabulary of 20 tokens."""
    nodes = [
        Node("feature", 0, 0, 7, 2.0, "a"),
        Node("feature", 0, 1, 3, 0.1, "b"),
        Node("error", 0, 0, None, 0.01, "err"),
        Node("embedding", -1, 0, 11, None, "x"),
        Node("embedding", -1, 1, 12, None, "y"),
        Node("logit", 1, 1, 5, 3.0, "z", prob=0.9),
    ]
    a = torch.zeros(6, 6)
    a[0, 3] = 4.0  # tok0 -> a
    a[0, 2] = 0.1  # err -> a
    a[1, 4] = 0.2  # tok1 -> b
    a[5, 0] = 3.0  # a -> logit
    a[5, 1] = -0.05  # b -> logit
    w = torch.tensor([0, 0, 0, 0, 0, 1.0])
    g = Graph("xy", [11, 12], ["x", "y"], 1, nodes, a, w, logit_directions=torch.zeros(1, 20))
    g.head_paths = [HeadPath(0, 5, 0, 1, 1, 2.5)]
    return g


LONG_LABEL = "years after 45 minus years up to 45"
PROMPT = "The war lasted from the year 1745 to the year 17"


def reference_graph(node_threshold: float = 0.999, edge_threshold: float = 0.99):
    """~300 nodes at the default thresholds: a logit difference with a long label (:data:`LONG_LABEL`),
    feature contexts from 8 reference sequences."""
    from interp.circuits.attribution import difference_target
    from interp.circuits.tracing import TraceConfig, trace
    from interp.data import token_batches
    from interp.models import load_model
    from interp.reference import vocab as V
    from interp.transcoders import registry

    torch.set_num_threads(1)
    model = load_model("reference", device="cpu")
    arch = registry.get("topk")
    tcs = {}
    for layer in range(model.cfg.n_layers):
        tc = arch.transcoder(arch.config(d_in=128, d_out=128, d_sae=256, k=8), seed=layer)
        tc.hook_name, tc.hook_name_out = f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out"
        tcs[layer] = tc
    vocab = model.tokenizer.get_vocab()
    target = difference_target(model, [vocab[d] for d in V.TWO_DIGITS if int(d) > 45],
                               [vocab[d] for d in V.TWO_DIGITS if int(d) <= 45], LONG_LABEL)
    contexts = next(iter(token_batches("reference", model.tokenizer, ctx_len=32, batch_size=8, seed=0)))
    return trace(model, tcs, PROMPT, target=target, context_tokens=contexts, model_name="reference",
                 cfg=TraceConfig(node_threshold=node_threshold, edge_threshold=edge_threshold))
