"""A deadline for work done in this process: a replay into a backend, whatever the backend.

`wandb sync` runs in a child process that the sync kills when it takes too long; a replay runs
here, inside the backend's SDK (MLflow's client, an OTLP exporter), which may wait on a server that
hangs or retry one that fails for minutes. `within(seconds)` bounds such a block: when the time is
up, SIGALRM raises `DeadlineExceeded` wherever the block is (a socket read, a retry's sleep), and
again every second while the block has not ended (an SDK that catches it and retries meets it
again). It is an `Exception`, so an SDK unwinds through it as through any failure (SQLAlchemy
rolls back its transaction); replays are idempotent, so the next sync completes what a cut one
left.

Signals reach the main thread only: elsewhere (a worker thread) the block runs unbounded, and
the backend's own limits apply (MLflow: aexp/trackers/mlflow/timeouts.py). An alarm set before
the block (a test runner's timeout) is kept: it fires at its own time, and is set again for the
time it had left when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

# After the first alarm, how often it is raised again while the block has not ended.
REPEAT_SECONDS = 1.0


class DeadlineExceeded(Exception):
    """The work took longer than its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"it took longer than the timeout ({seconds:g} s)")
        self.seconds = seconds


@contextlib.contextmanager
def within(seconds: float | None) -> Iterator[None]:
    """Raise DeadlineExceeded inside the block once `seconds` have passed (module docstring).
    None, 0 or a block outside the main thread: no deadline. Any alarm set before is restored
    afterwards (without its remaining time: aexp sets none)."""
    if not seconds or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    active = [True]
    start = time.monotonic()
    outer_at: float | None = None  # when an alarm set before this block is due

    def alarm(signum: int, frame: Any) -> None:
        if outer_at is not None and time.monotonic() >= outer_at and callable(previous):
            previous(signum, frame)  # the earlier alarm's turn (pytest-timeout's, say)
        if active[0]:
            raise DeadlineExceeded(seconds)

    previous = signal.signal(signal.SIGALRM, alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_SECONDS)
    if outer > 0:
        outer_at = start + outer
        if outer < seconds:
            signal.setitimer(signal.ITIMER_REAL, outer, REPEAT_SECONDS)
    try:
        yield
    finally:
        while True:  # an alarm during the clean-up itself is dropped, the clean-up done again
            try:
                active[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                if outer_at is not None:  # the earlier alarm, with the time it had left
                    signal.setitimer(signal.ITIMER_REAL, max(0.001, outer_at - time.monotonic()))
                break
            except DeadlineExceeded:
                continue


__all__ = ["DeadlineExceeded", "within"]
