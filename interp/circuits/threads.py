"""How many CPU threads attribution's backward passes use.

torch's default, one intra-op thread per core, is fastest on an idle machine, but on a
machine that other processes share the threads of one operation wait for each other at
every barrier while another process holds their core: on the shared 2-core machine of
docs/benchmarks.md one attribution took 129 s on two threads against 3 s on one. So the
default (``AttributionConfig.threads = None``) measures rather than guesses:

* one thread when torch is set to one (``--threads 1``, ``OMP_NUM_THREADS=1``), when this
  process may run on one CPU only, when the machine is busy (1-minute load average at least
  the number of usable CPUs) or when there are fewer than three backward passes to run;
* otherwise the first backward pass runs on one thread and the second on all of them
  (torch's setting, at most the usable CPUs), and the rest use the faster per unit of work,
  many threads only when at least 10% faster;
* on many threads every later pass is timed too: one that takes more than twice the
  one-thread time for its work (another process took a core) switches the rest to one.

An explicit thread count is used as given. torch's setting is restored afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)


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


class ThreadChooser:
    """Sets torch's thread count for each backward pass of an attribution (see the module doc).

    Use :meth:`run` around each pass, giving its work (any unit proportional to its cost,
    e.g. targets x positions x layers); :attr:`threads` is the count in use.
    """

    SPEEDUP = 1.1
    """Many threads must be at least this much faster per unit of work to be chosen."""
    SLOWDOWN = 2.0
    """A pass this much slower per unit of work than on one thread switches back to one."""

    def __init__(self, requested: int | None, n_passes: int) -> None:
        self.before = torch.get_num_threads()
        self.probing = False
        self.per_work_one: float | None = None
        if requested is not None:
            self.threads = requested
            log.debug("attribution threads: %d (as given)", requested)
            return
        cpus = usable_cpus()
        most = min(self.before, cpus)
        if most <= 1 or n_passes < 3 or machine_busy(cpus):
            self.threads = 1
            log.debug("attribution threads: 1 (torch at %d, %d usable CPUs, %d passes, busy: %s)",
                      self.before, cpus, n_passes, machine_busy(cpus))
            return
        self.threads, self.most, self.probing = 1, most, True

    @contextlib.contextmanager
    def run(self, work: float) -> Iterator[None]:
        """Run one pass (the body) on the chosen thread count, timing it where that matters."""
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        yield
        per_work = (time.perf_counter() - start) / max(work, 1e-12)
        if self.probing and self.per_work_one is None:  # first pass: one thread
            self.per_work_one, self.threads = per_work, self.most
        elif self.probing:  # second pass: many threads
            self.probing = False
            if per_work * self.SPEEDUP > self.per_work_one:
                self.threads = 1
            log.debug("attribution threads: %d (one thread %.3g s/unit, %d threads %.3g s/unit)",
                     self.threads, self.per_work_one, self.most, per_work)
        elif self.threads > 1 and self.per_work_one is not None and per_work > self.SLOWDOWN * self.per_work_one:
            log.debug("attribution threads: back to 1 (a pass took %.1fx the one-thread time)", per_work / self.per_work_one)
            self.threads = 1

    def restore(self) -> None:
        """Put torch's thread count back as it was."""
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)


@contextlib.contextmanager
def choose_threads(requested: int | None, n_passes: int) -> Iterator[ThreadChooser]:
    """A :class:`ThreadChooser` for ``n_passes`` backward passes; torch's setting is restored on exit."""
    chooser = ThreadChooser(requested, n_passes)
    try:
        yield chooser
    finally:
        chooser.restore()
