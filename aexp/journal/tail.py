"""Reading the end of a run's journal: `read_tail`, what an attempt's start and a job's state need
of it (the last event, the highest step, the last attempt's opening and pace) without reading
the whole file."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Tail:
    """The end of a run's journal: what an attempt's start and a job's state need of it.

    `last` is the last readable event (None: no journal, or nothing readable yet); `last_step`
    the highest step recorded (None: no row, or not asked for); `opening` the `resume_run` event
    of the journal's last attempt (None: no attempt recorded, or not asked for). `pace`: the
    longest gap in seconds between two consecutive progress events (`log`, `log_artifact`) among
    the last attempt's last PACE_ROWS (None: fewer than two, or not asked for); the wait from the
    attempt's opening to its first row is not pace (a start loads data, compiles).
    """

    last: dict[str, Any] | None = None
    last_step: int | None = None
    opening: dict[str, Any] | None = None
    pace: float | None = None

    @property
    def event(self) -> str | None:
        """The name of the last event (`init_run`, `resume_run`, `log`, `log_artifact`,
        `finish`), None when there is none."""
        return None if self.last is None else self.last.get("event")

    @property
    def attempt(self) -> int | None:
        """The number of the journal's last attempt: its `finish` says it, else its opening
        `resume_run` (None: the journal records no numbered attempt)."""
        for event in (self.last, self.opening):
            number = event.get("attempt") if event else None
            if type(number) is int and (event is self.opening or self.event == "finish"):
                return number
        return None

    @property
    def in_flight(self) -> bool:
        """The last attempt opened the run and has not written its `finish` (it runs, or its
        process died)."""
        return self.event in ("resume_run", "log", "log_artifact") and self.opening is not None


# The head of every event line JournalWriter writes: its time and name are read from there
# without parsing the line (a `log` line is skipped by name when its step is not asked for).
_HEAD = re.compile(rb'^\{"timestamp": "([^"]*)", "event": "(\w+)"')
_PROGRESS = (b"log", b"log_artifact")


# The pace is read from the last attempt's last PACE_ROWS rows at most: a status over many
# running jobs parses a few hundred timestamps per job, not a whole tail's.
PACE_ROWS = 128


class _Pace:
    """The longest gap between consecutive progress events, fed from the last one backwards."""

    __slots__ = ("fed", "later", "longest")

    def __init__(self) -> None:
        self.later: datetime | None = None  # the progress event after the one being fed
        self.longest: float | None = None
        self.fed = 0

    def feed(self, stamp: bytes) -> None:
        if self.fed >= PACE_ROWS:
            return
        self.fed += 1
        try:
            when = datetime.fromisoformat(stamp.decode())
        except ValueError:
            return
        if self.later is not None:
            gap = (self.later - when).total_seconds()
            if self.longest is None or gap > self.longest:
                self.longest = gap
        self.later = when


def read_tail(
    path: str | os.PathLike,
    *,
    steps: bool = True,
    fd: int | None = None,
    limit: int | None = None,
    pace: bool = False,
) -> Tail:
    """The journal's last readable event, its highest step (when `steps`), and the opening
    `resume_run` of its last attempt, read from the end of the file.

    Steps only grow along the history (re-dos are behind it), so the step of the last `log`
    event that is not a re-do is the highest. Costs a read of the file's tail, more only when the
    last attempt's rows fill it; `limit` bounds the bytes read (what lies further back is then
    not found). `fd` reads through a descriptor open on the journal already (its position is
    left alone). `pace`: measure the last attempt's pace too, unless it has ended (`Tail.pace`:
    the timestamps of its rows are parsed, ~1 us each). No journal: `Tail()`.
    """
    if fd is None:
        try:
            own = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return Tail()
        try:
            return _tail_of(own, steps, limit, pace)
        finally:
            os.close(own)
    return _tail_of(fd, steps, limit, pace)


def _tail_of(fd: int, steps: bool, limit: int | None, pace: bool = False) -> Tail:
    size = os.fstat(fd).st_size
    last: dict[str, Any] | None = None
    step: int | None = None
    opening: dict[str, Any] | None = None
    gaps = _Pace() if pace else None
    chunk = 1 << 12
    end = size
    floor = 0 if limit is None else max(0, size - limit)
    carry = b""  # the start of a line cut by the previous chunk's boundary
    while end > floor:
        start = max(floor, end - chunk)
        lines = (os.pread(fd, end - start, start) + carry).split(b"\n")
        carry = lines.pop(0) if start > 0 else b""  # at the limit: a line cut short, left out
        for line in reversed(lines):
            if not line:
                continue
            head = _HEAD.match(line) if gaps is not None or last is not None else None
            if gaps is not None and head and opening is None and head.group(2) in _PROGRESS:
                gaps.feed(head.group(1))  # an event of the last attempt
            if last is not None:  # only a step, the opening and the journal's start matter now
                name = head.group(2) if head else None
                if name == b"log" and (step is not None or not steps):
                    continue
                if name in (b"log_artifact", b"finish"):
                    continue
            event = parse_event(line)
            if event is None:
                continue
            if last is None:
                last = event
                if event.get("event") == "finish":
                    gaps = None  # the last attempt has ended: its pace is nobody's question
            kind = event.get("event")
            if kind == "log" and step is None and steps:
                value = event.get("step")
                if type(value) is int and not event.get("redo"):
                    step = value
            elif kind == "resume_run" and opening is None:
                opening = event
            elif kind == "init_run":
                return Tail(last, step, opening, _longest(gaps))
            if opening is not None and (step is not None or not steps):
                return Tail(last, step, opening, _longest(gaps))
        end = start
        chunk *= 4
    return Tail(last, step, opening, _longest(gaps))


def _longest(gaps: _Pace | None) -> float | None:
    return None if gaps is None else gaps.longest


def parse_event(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:  # a torn line: a write cut short by a kill
        return None
    return event if isinstance(event, dict) else None


def tail_step(path: str | os.PathLike) -> int | None:
    """The highest step a journal records (None: no journal, or no step yet)."""
    return read_tail(path).last_step


__all__ = ["PACE_ROWS", "Tail", "parse_event", "read_tail", "tail_step"]
