"""Heartbeats of executing attempts: one background thread per process, for all of them.

An executing attempt refreshes `heartbeat_at` (and `tracker.last_step`) in its job document every
`interval` seconds, so another process can tell a live attempt from one whose process died on
another host (`aexp.lifecycle.is_stale`). One thread serves every attempt of the process: a
sweep that runs hundreds of short attempts in one `run` starts one thread, not hundreds.
"""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from aexp.jobdoc import now_iso, update_doc


@dataclass(eq=False)
class Beat:
    """One attempt's registration; `ended` stops its beats (checked under the job lock)."""

    job: Any
    tracker: Any
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


def start(job: Any, tracker: Any, interval: float) -> Beat:
    """Beat for `job` every `interval` seconds until `stop`; the first beat after `interval`."""
    global _thread, _idle
    beat = Beat(job, tracker, interval, due=time.monotonic() + interval)
    with _lock:
        _beats.append(beat)
        _idle = interval
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, daemon=True, name="aexp-heartbeat")
            _thread.start()
        elif beat.due < _wake_at:
            _lock.notify()
    return beat


def stop(beat: Beat) -> None:
    """No beat for this attempt after this returns, not even one already waiting for the lock."""
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
                _beat(beat)


def _beat(beat: Beat) -> None:
    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        if beat.ended:  # the attempt ended while this beat waited for the job lock
            return None
        updates: dict[str, Any] = {"heartbeat_at": now_iso()}
        if isinstance(doc.get("tracker"), dict) and beat.tracker.run_id:
            updates["tracker"] = {**doc["tracker"], "last_step": beat.tracker.step - 1}
        return updates

    update_doc(beat.job, change)


__all__ = ["Beat", "start", "stop"]
