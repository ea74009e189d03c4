"""How many CPU threads attribution and tracing use.

torch's default, one intra-op thread per core, is fastest on an idle machine, but on a
machine that other processes share the threads of one operation wait for each other at
every barrier while another process holds their core: on the shared 2-core machine of
docs/benchmarks.md one attribution took 129 s on two threads against 3 s on one, and a
64-token trace 35-48 s against 5-6 s. So the default (``AttributionConfig.threads = None``)
measures rather than guesses. Each phase (the clean run, the edge matrix, the scores,
pruning and head paths) runs inside :func:`choose_threads`, which uses

* one thread when torch is set to one (``--threads 1``, ``OMP_NUM_THREADS=1``), when this
  process may run on one CPU only, or when the machine is busy (1-minute load average at
  least the number of usable CPUs);
* otherwise the count measured in the last minute, if there is one;
* otherwise all of them (torch's setting, at most the usable CPUs), and the first phase with
  at least three backward passes measures: its first pass runs on one thread, its second on
  all, and the faster per unit of work is kept (all only when at least 10% faster) and
  remembered for a minute. On all threads each later pass of that phase is timed too: one
  slower than twice the one-thread time (another process took a core) switches to one.

An explicit thread count is used as given. torch's setting is restored when a phase ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)

REMEMBER_S = 60.0
"""How long a measured choice is reused without measuring again (seconds)."""

_measured: dict[int, tuple[int, float]] = {}
"""Most threads available -> (the count measured fastest, when)."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def machine_busy(cpus: int) -> bool:
    """True when the 1-minute load average is at least ``cpus`` (no core to spare)."""
    try:
        return os.getloadavg()[0] >= cpus
    except (AttributeError, OSError):  # no load average on this OS
        return False


def forget() -> None:
    """Drop the remembered measurement (the next phase measures again)."""
    _measured.clear()


class ThreadChooser:
    """The thread count of one phase (see the module doc); :func:`choose_threads` makes one.

    Run each backward pass inside :meth:`run`, giving its work (any unit proportional to its
    cost, e.g. targets x positions x layers), after telling :meth:`expect` how many there are.
    :attr:`threads` is the count in use.
    """

    SPEEDUP = 1.1
    """All threads must be at least this much faster per unit of work to be chosen."""
    SLOWDOWN = 2.0
    """A pass this much slower per unit of work than on one thread switches to one."""

    def __init__(self, requested: int | None) -> None:
        self.before = torch.get_num_threads()
        self.probing = False
        self.per_work_one: float | None = None
        if requested is not None:
            self.threads, why = requested, "as given"
        else:
            cpus = usable_cpus()
            self.most = min(self.before, cpus)
            remembered = _measured.get(self.most)
            if self.most <= 1 or machine_busy(cpus):
                self.threads, why = 1, f"torch at {self.before}, {cpus} usable CPUs, busy: {machine_busy(cpus)}"
            elif remembered is not None and time.monotonic() - remembered[1] < REMEMBER_S:
                self.threads, why = remembered[0], "measured in the last minute"
            else:
                self.threads, self.probing, why = self.most, True, "not measured yet"
        log.debug("threads: %d (%s)", self.threads, why)

    def apply(self) -> None:
        """Set torch's thread count to :attr:`threads`."""
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def expect(self, n_passes: int) -> None:
        """Measure only when there are at least three passes (fewer: keep the current count)."""
        if n_passes < 3:
            self.probing = False

    @contextlib.contextmanager
    def run(self, work: float) -> Iterator[None]:
        """Run one pass (the body) on the chosen thread count, timing it where that matters."""
        if self.probing and self.per_work_one is None:
            self.threads = 1  # the first pass measures one thread
        self.apply()
        start = time.perf_counter()
        yield
        per_work = (time.perf_counter() - start) / max(work, 1e-12)
        if self.probing and self.per_work_one is None:  # first pass done: now all threads
            self.per_work_one, self.threads = per_work, self.most
        elif self.probing:  # second pass done: decide
            self.probing = False
            if per_work * self.SPEEDUP > self.per_work_one:
                self.threads = 1
            _measured[self.most] = (self.threads, time.monotonic())
            log.debug("threads: %d measured (one thread %.3g s/unit, %d threads %.3g s/unit)",
                      self.threads, self.per_work_one, self.most, per_work)
        elif self.threads > 1 and self.per_work_one is not None and per_work > self.SLOWDOWN * self.per_work_one:
            log.debug("threads: back to 1 (a pass took %.1fx the one-thread time)", per_work / self.per_work_one)
            self.threads = 1
            _measured[self.most] = (1, time.monotonic())

    def restore(self) -> None:
        """Put torch's thread count back as it was."""
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)


@contextlib.contextmanager
def choose_threads(requested: int | None) -> Iterator[ThreadChooser]:
    """Run a phase on the thread count :class:`ThreadChooser` picks; torch's setting is restored on exit."""
    chooser = ThreadChooser(requested)
    chooser.apply()
    try:
        yield chooser
    finally:
        chooser.restore()
