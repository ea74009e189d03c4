"""A hand-written attribution graph whose influences, pruning and exports are known by hand."""

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
