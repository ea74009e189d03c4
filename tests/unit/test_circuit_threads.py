"""The thread count of attribution's backward passes: explicit, refused on a busy machine,
measured otherwise, and abandoned when a pass slows down (a planted clock times the passes)."""

from __future__ import annotations

import pytest
import torch

from interp.circuits import threads as threads_module
from interp.circuits.attribution import AttributionConfig
from interp.circuits.threads import ThreadChooser, choose_threads
from interp.errors import ConfigError


class Clock:
    """``time.perf_counter`` for the module under test: advanced by hand inside each pass."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def machine(monkeypatch):
    """Two usable CPUs, an idle load average, torch at two threads (restored afterwards), a planted clock."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    clock = Clock()
    state = {"load": 0.1}
    monkeypatch.setattr(threads_module, "usable_cpus", lambda: 2)
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (state["load"], 0.0, 0.0))
    monkeypatch.setattr(threads_module.time, "perf_counter", clock)
    yield clock, state
    torch.set_num_threads(before)


def passes(chooser: ThreadChooser, clock: Clock, seconds_by_threads: dict[int, list[float]], work: float = 1.0) -> list[int]:
    """Run passes whose duration depends on the thread count in use; return the counts used."""
    used = []
    for i in range(len(seconds_by_threads[1])):
        with chooser.run(work):
            n = torch.get_num_threads()
            used.append(n)
            clock.now += seconds_by_threads[n][i]
    return used


def test_an_explicit_count_is_used_and_torch_restored(machine):
    clock, _ = machine
    with choose_threads(1, n_passes=10) as chooser:
        assert passes(chooser, clock, {1: [1.0] * 4, 2: [0.1] * 4}) == [1, 1, 1, 1]
    assert torch.get_num_threads() == 2


def test_many_threads_when_measured_faster_then_one_when_a_pass_slows_down(machine):
    clock, _ = machine
    with choose_threads(None, n_passes=10) as chooser:
        # probe: one thread 1.0 s, two threads 0.5 s -> two; then a pass at 2.5 s (a core taken) -> one
        used = passes(chooser, clock, {1: [1.0, 1.0, 1.0, 1.0, 1.0], 2: [0.5, 0.5, 0.5, 2.5, 0.5]})
    assert used == [1, 2, 2, 2, 1]
    assert torch.get_num_threads() == 2


def test_one_thread_when_many_are_not_faster(machine):
    clock, _ = machine
    with choose_threads(None, n_passes=10) as chooser:
        assert passes(chooser, clock, {1: [1.0] * 4, 2: [0.95] * 4}) == [1, 2, 1, 1]  # < 10% faster


@pytest.mark.parametrize("case", ["busy", "few passes", "torch at one", "one cpu"])
def test_one_thread_without_measuring(machine, monkeypatch, case):
    clock, state = machine
    n_passes = 10
    if case == "busy":
        state["load"] = 2.0
    elif case == "few passes":
        n_passes = 2
    elif case == "torch at one":
        torch.set_num_threads(1)
    else:
        monkeypatch.setattr(threads_module, "usable_cpus", lambda: 1)
    with choose_threads(None, n_passes=n_passes) as chooser:
        assert passes(chooser, clock, {1: [1.0] * 3, 2: [0.1] * 3}) == [1, 1, 1]


def test_threads_must_be_positive():
    with pytest.raises(ConfigError, match="--threads must be at least 1"):
        AttributionConfig(threads=0)


def test_circuit_trace_takes_threads_into_its_attribution_config():
    from interp.cli import _parse, build_parser

    parser = build_parser()
    args = _parse(parser, ["circuit", "trace", "--prompt", "x", "--threads", "1"])
    assert args.cfg.trace.attribution.threads == 1
    assert _parse(parser, ["circuit", "trace", "--prompt", "x"]).cfg.trace.attribution.threads is None
