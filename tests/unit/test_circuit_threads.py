"""The thread count of attribution and tracing: explicit, one on a busy machine, measured
otherwise (and remembered for a minute), abandoned when a pass slows down (a planted clock
times the passes)."""

from __future__ import annotations

import pytest
import torch

from interp.circuits import threads as threads_module
from interp.circuits.attribution import AttributionConfig
from interp.circuits.threads import ThreadChooser, choose_threads, forget
from interp.errors import ConfigError


class Clock:
    """``time.perf_counter`` and ``time.monotonic`` for the module under test, advanced by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def machine(monkeypatch):
    """Two usable CPUs, an idle load average, torch at two threads (restored afterwards), a
    planted clock, nothing measured yet."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    clock = Clock()
    state = {"load": 0.1}
    monkeypatch.setattr(threads_module, "usable_cpus", lambda: 2)
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (state["load"], 0.0, 0.0))
    monkeypatch.setattr(threads_module.time, "perf_counter", clock)
    monkeypatch.setattr(threads_module.time, "monotonic", clock)
    forget()
    yield clock, state
    forget()
    torch.set_num_threads(before)


def passes(chooser: ThreadChooser, clock: Clock, seconds_by_threads: dict[int, list[float]], work: float = 1.0) -> list[int]:
    """Run passes whose duration depends on the thread count in use; return the counts used."""
    chooser.expect(len(seconds_by_threads[1]))
    used = []
    for i in range(len(seconds_by_threads[1])):
        with chooser.run(work):
            n = torch.get_num_threads()
            used.append(n)
            clock.now += seconds_by_threads[n][i]
    return used


def test_an_explicit_count_is_used_and_torch_restored(machine):
    clock, _ = machine
    with choose_threads(1) as chooser:
        assert torch.get_num_threads() == 1
        assert passes(chooser, clock, {1: [1.0] * 4, 2: [0.1] * 4}) == [1, 1, 1, 1]
    assert torch.get_num_threads() == 2


def test_all_threads_when_measured_faster_then_one_when_a_pass_slows_down(machine):
    clock, _ = machine
    with choose_threads(None) as chooser:
        assert torch.get_num_threads() == 2  # not measured yet: the work before the passes on all
        # one thread 1.0 s, two threads 0.5 s -> two; then a pass at 2.5 s (a core taken) -> one
        used = passes(chooser, clock, {1: [1.0, 1.0, 1.0, 1.0, 1.0], 2: [0.5, 0.5, 0.5, 2.5, 0.5]})
    assert used == [1, 2, 2, 2, 1]
    assert torch.get_num_threads() == 2
    with choose_threads(None) as chooser:  # the next phase reuses the last measurement: one
        assert torch.get_num_threads() == 1 and not chooser.probing


def test_a_measurement_is_reused_for_a_minute(machine):
    clock, _ = machine
    with choose_threads(None) as chooser:
        assert passes(chooser, clock, {1: [1.0] * 3, 2: [0.5] * 3}) == [1, 2, 2]
    clock.now += 30
    with choose_threads(None) as chooser:
        assert torch.get_num_threads() == 2 and not chooser.probing
    clock.now += 60
    with choose_threads(None) as chooser:
        assert chooser.probing  # measured again


def test_one_thread_when_all_are_not_faster(machine):
    clock, _ = machine
    with choose_threads(None) as chooser:
        assert passes(chooser, clock, {1: [1.0] * 4, 2: [0.95] * 4}) == [1, 2, 1, 1]  # < 10% faster
    with choose_threads(None):
        assert torch.get_num_threads() == 1


def test_few_passes_are_not_measured(machine):
    clock, _ = machine
    with choose_threads(None) as chooser:
        assert passes(chooser, clock, {1: [1.0] * 2, 2: [5.0] * 2}) == [2, 2]
    with choose_threads(None) as chooser:
        assert chooser.probing  # nothing remembered


@pytest.mark.parametrize("case", ["busy", "torch at one", "one cpu"])
def test_one_thread_without_measuring(machine, monkeypatch, case):
    clock, state = machine
    if case == "busy":
        state["load"] = 2.0
    elif case == "torch at one":
        torch.set_num_threads(1)
    else:
        monkeypatch.setattr(threads_module, "usable_cpus", lambda: 1)
    with choose_threads(None) as chooser:
        assert torch.get_num_threads() == 1  # the whole phase, not only its passes
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
