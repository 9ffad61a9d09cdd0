"""CPU threads that survive a busy machine: the trainer re-chooses torch's thread count while it runs.

On two cores shared with one other process (even at ``nice 19``), every parallel region of a step
waits for its slowest thread, and a preempted thread stalls them all: a hash-grid step took 79 ms on
two threads and 46 ms on one beside a busy loop, while on an idle machine two threads are faster.
No fixed count is right for both, so :class:`ThreadTuner` times a few steps with each candidate
count, keeps the fastest, and tries again every ``period`` seconds as the load changes.

Thread counts change the order of floating-point sums, so results are reproducible to float
rounding, not bit for bit; ``--threads N`` fixes the count.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch


class ThreadTuner:
    """A step hook (called before each step) that keeps torch's thread count at the fastest candidate.

    Candidates: ``max_threads`` and 1 (and ``max_threads // 2`` with four or more). A trial runs
    ``trial_steps`` steps with each; the median time between hook calls decides.

    Example:
        >>> tuner = ThreadTuner(max_threads=2, trial_steps=3, period=30.0)
        >>> tuner.candidates
        [2, 1]
    """

    def __init__(self, max_threads: int, trial_steps: int = 4, period: float = 30.0) -> None:
        self.candidates = sorted({max_threads, max(1, max_threads // 2) if max_threads >= 4 else 1, 1}, reverse=True)
        self.trial_steps = trial_steps
        self.period = period
        self.chosen = max_threads
        self._plan: list[tuple[int, bool]] = []  # (threads, timed?) for the coming steps of a trial
        self._timings: dict[int, list[float]] = {}
        self._timing: int | None = None  # the thread count of the step now running, when it is timed
        self._last_call = 0.0
        self._settled_at = -float("inf")

    def __call__(self, step: int) -> None:
        now = time.perf_counter()
        if self._timing is not None:
            self._timings[self._timing].append(now - self._last_call)
            self._timing = None
        if not self._plan and self._timings:
            self._finish_trial(now)
        elif not self._plan and now - self._settled_at > self.period:
            # each candidate: one untimed step (the pool resizes), then ``trial_steps`` timed ones
            self._plan = [(count, timed) for count in self.candidates for timed in (False, *[True] * self.trial_steps)]
            self._timings = {count: [] for count in self.candidates}
        if self._plan:
            count, timed = self._plan.pop(0)
            if count != torch.get_num_threads():
                torch.set_num_threads(count)
            self._timing = count if timed else None
        self._last_call = time.perf_counter()

    def _finish_trial(self, now: float) -> None:
        medians = {count: statistics.median(times) for count, times in self._timings.items() if times}
        if medians:
            self.chosen = min(medians, key=medians.__getitem__)
        torch.set_num_threads(self.chosen)
        self._timings = {}
        self._settled_at = now


def cpu_thread_hooks(device: torch.device, threads: int | None) -> list[Callable[[int], None]]:
    """The trainer's thread policy: ``threads`` fixed, or a :class:`ThreadTuner` on a multi-core CPU."""
    if device.type != "cpu":
        return []
    if threads is not None:
        torch.set_num_threads(threads)
        return []
    available = torch.get_num_threads()
    return [ThreadTuner(available)] if available > 1 else []


@contextlib.contextmanager
def restored_threads() -> Iterator[None]:
    """Give torch back the thread count it had before (the tuner and ``--threads`` change it)."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)
