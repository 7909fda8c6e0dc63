"""Heartbeats of executing attempts: one background thread per process, for all of them.

An executing attempt records its start in its job document with its first beat, `first` seconds
after it started (its run's journal has it at once), then refreshes `heartbeat_at` (and
`tracker.last_step`) every `interval` seconds, so another process can tell a live attempt from
one whose process died on another host (`aexp.state.is_stale`). What a beat writes is the
attempt's (`aexp.attempt.Attempt.beat`); this module only keeps time. One thread serves every
attempt of the process: a sweep that runs hundreds of short attempts in one `run` starts one
thread, not hundreds, and wakes it about once per `first` seconds, not once per attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field


@dataclass(eq=False)
class Beat:
    """One attempt's registration: `write(beat)` is called at each beat, from the heartbeat
    thread. `ended` stops its beats; a `write` checks it under the job lock, so that no beat
    lands after the attempt's end is recorded."""

    write: Callable[[Beat], None]
    interval: float
    due: float = 0.0
    ended: bool = field(default=False)


_lock = threading.Condition()
_beats: list[Beat] = []
_thread: threading.Thread | None = None
# When the thread wakes next (time.monotonic()), and how long it sleeps with no attempt
# registered: the interval last asked for. An attempt whose first beat is due no earlier than
# that wake does not wake the thread: a sweep of short attempts costs the thread nothing per
# attempt (no wake, no switch to it and back).
_wake_at = 0.0
_idle = 30.0


def start(write: Callable[[Beat], None], interval: float, first: float | None = None) -> Beat:
    """Call `write` every `interval` seconds until `stop`; the first time after `first`
    seconds (default: `interval`)."""
    global _thread, _idle
    delay = interval if first is None else min(first, interval)
    beat = Beat(write, interval, due=time.monotonic() + delay)
    with _lock:
        _beats.append(beat)
        _idle = interval
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, daemon=True, name="aexp-heartbeat")
            _thread.start()
        elif beat.due < _wake_at:
            _lock.notify()
    return beat


def stop(beat: Beat | None) -> None:
    """No beat for this attempt after this returns, not even one already waiting for the lock."""
    if beat is None:
        return
    beat.ended = True
    with _lock:
        if beat in _beats:
            _beats.remove(beat)


def _run() -> None:
    global _wake_at
    while True:
        with _lock:
            while True:
                now = time.monotonic()
                due = [b for b in _beats if b.due <= now]
                if due:
                    break
                _wake_at = min((b.due for b in _beats), default=now + _idle)
                _lock.wait(timeout=max(_wake_at - now, 0.01))
            for beat in due:
                beat.due = now + beat.interval
        for beat in due:
            with suppress(Exception):  # a missed beat only makes the job look stale sooner
                beat.write(beat)


__all__ = ["Beat", "start", "stop"]
