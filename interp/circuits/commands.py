"""``interp circuit trace``: a prompt to an attribution graph (JSON, GraphML, HTML, graph.pt)."""

from __future__ import annotations

from interp.circuits.tracing import CircuitTraceConfig
from interp.commands import command, finish


@command("circuit", "trace", help="trace a prompt into an attribution graph (JSON, GraphML, HTML)", config=CircuitTraceConfig)
def _trace(cfg: CircuitTraceConfig) -> int:
    from interp.circuits.tracing import run

    return finish(run(cfg), cfg.out)
