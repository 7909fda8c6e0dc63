"""Reading a run's journal: the whole of it (`read_journal`), or its tail (`read_tail`)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aexp.journal.format import decode_metrics


@dataclass
class Row:
    """One `log` event."""

    step: int | None
    metrics: dict[str, Any]
    attempt: int
    timestamp: str = ""
    redo: bool = False


@dataclass
class Artifact:
    """One `log_artifact` event; `path` as recorded (relative to the job, or absolute)."""

    name: str
    path: str
    size_bytes: int
    attempt: int
    timestamp: str = ""

    def resolve(self, job_path: str | os.PathLike) -> Path:
        """The artifact's file in the job as it is now (the project may have moved)."""
        return Path(job_path, self.path) if not os.path.isabs(self.path) else Path(self.path)


@dataclass
class Attempt:
    """One execution attempt: from its `resume_run` to its `finish` (None: it never finished,
    e.g. the process was killed)."""

    number: int
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    preempted: bool = False
    host: str | None = None
    first_step: int | None = None
    last_step: int | None = None
    rows: int = 0

    @property
    def finished(self) -> bool:
        return self.ended_at is not None


@dataclass
class Journal:
    """Everything one run's journal holds, in the order it was written."""

    path: Path
    run_id: str
    init: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    torn_lines: int = 0  # lines that could not be read (a write cut short by a kill)

    @property
    def project(self) -> str:
        return str(self.init.get("project") or "")

    @property
    def group(self) -> str:
        return str(self.init.get("group") or "")

    @property
    def config(self) -> dict[str, Any]:
        config = self.init.get("config")
        return config if isinstance(config, dict) else {}

    def history(self) -> list[Row]:
        """The run's step axis: every row that is not a re-do, in the order logged (steps
        ascend). This is what every tracker receives."""
        return [row for row in self.rows if not row.redo]

    @property
    def last_step(self) -> int | None:
        """The highest step recorded, re-dos included (the next row goes after it)."""
        steps = [row.step for row in self.rows if row.step is not None]
        return max(steps) if steps else None

    @property
    def summary(self) -> dict[str, Any]:
        """The latest value of every metric along the history."""
        summary: dict[str, Any] = {}
        for row in self.history():
            summary.update(row.metrics)
        return summary

    def metric(self, key: str) -> list[tuple[int, Any, int]]:
        """(step, value, attempt) of every history row that has `key`, in step order."""
        return [
            (row.step, row.metrics[key], row.attempt)
            for row in self.history()
            if row.step is not None and key in row.metrics
        ]

    @property
    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def state(self) -> str:
        """bound | running | preempted | finished | failed, from the last events.

        `running` also covers an attempt whose process died without a `finish`.
        """
        last = self.last_attempt
        if last is None:
            return "bound"
        if not last.finished:
            return "running"
        if last.preempted:
            return "preempted"
        return "finished" if last.exit_code == 0 else "failed"


def iter_events(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every readable event of a journal, in order; unreadable lines are skipped.

    Raises FileNotFoundError when there is no journal.
    """
    with open(path, "rb") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError: a torn line
                continue
            if isinstance(event, dict):
                yield event


def read_journal(path: str | os.PathLike) -> Journal:
    """Read a whole journal. A torn line (a write cut short by a kill) is counted and skipped.

    Raises FileNotFoundError when there is no journal.
    """
    path = Path(path)
    journal = Journal(path=path, run_id=path.parent.name)
    current: Attempt | None = None

    def opened() -> Attempt:
        # Used outside the workflow, init_run opens the run: its events before any resume_run
        # belong to attempt 1.
        nonlocal current
        if current is None:
            current = Attempt(1, started_at=str(journal.init.get("timestamp") or "") or None)
            journal.attempts.append(current)
        return current

    with open(path, "rb") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                journal.torn_lines += 1
                continue
            if not isinstance(event, dict):
                journal.torn_lines += 1
                continue
            kind = event.get("event")
            stamp = str(event.get("timestamp") or "")
            if kind == "log":
                attempt = opened()
                step = event.get("step")
                step = step if type(step) is int else None
                redo = bool(event.get("redo"))
                journal.rows.append(Row(step, decode_metrics(event), attempt.number, stamp, redo))
                attempt.rows += 1
                if step is not None and not redo:
                    if attempt.first_step is None:
                        attempt.first_step = step
                    attempt.last_step = max(step, attempt.last_step or step)
            elif kind == "resume_run":
                number = event.get("attempt")
                if type(number) is not int:
                    number = len(journal.attempts) + 1
                current = Attempt(number, started_at=stamp, host=event.get("host"))
                journal.attempts.append(current)
            elif kind == "finish":
                attempt = opened()
                code = event.get("exit_code")
                attempt.exit_code = code if type(code) is int else 0
                attempt.preempted = bool(event.get("preempted"))
                attempt.ended_at = stamp
            elif kind == "log_artifact":
                journal.artifacts.append(
                    Artifact(
                        name=str(event.get("name", "")),
                        path=str(event.get("path", "")),
                        size_bytes=int(event.get("size_bytes") or 0),
                        attempt=opened().number,
                        timestamp=stamp,
                    )
                )
            elif kind == "init_run" and not journal.init:
                journal.init = event
                journal.run_id = str(event.get("run_id") or journal.run_id)
    return journal


@dataclass(frozen=True)
class Tail:
    """The end of a run's journal: what an attempt's start and a job's state need of it.

    `last` is the last readable event (None: no journal, or nothing readable yet); `last_step`
    the highest step recorded (None: no row, or not asked for); `opening` the `resume_run` event
    of the journal's last attempt (None: no attempt recorded, or not asked for).
    """

    last: dict[str, Any] | None = None
    last_step: int | None = None
    opening: dict[str, Any] | None = None

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


# The head of every event line JournalWriter writes: its name is read from there without parsing
# the line (a `log` line is skipped by name when its step is not asked for).
_HEAD = re.compile(rb'^\{"timestamp": "[^"]*", "event": "(\w+)"')


def read_tail(
    path: str | os.PathLike,
    *,
    steps: bool = True,
    fd: int | None = None,
    limit: int | None = None,
) -> Tail:
    """The journal's last readable event, its highest step (when `steps`), and the opening
    `resume_run` of its last attempt, read from the end of the file.

    Steps only grow along the history (re-dos are behind it), so the step of the last `log`
    event that is not a re-do is the highest. Costs a read of the file's tail, more only when the
    last attempt's rows fill it; `limit` bounds the bytes read (what lies further back is then
    not found). `fd` reads through a descriptor open on the journal already (its position is
    left alone). No journal: `Tail()`.
    """
    if fd is None:
        try:
            own = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return Tail()
        try:
            return _tail_of(own, steps, limit)
        finally:
            os.close(own)
    return _tail_of(fd, steps, limit)


def _tail_of(fd: int, steps: bool, limit: int | None) -> Tail:
    size = os.fstat(fd).st_size
    last: dict[str, Any] | None = None
    step: int | None = None
    opening: dict[str, Any] | None = None
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
            if last is not None:  # only a step, the opening and the journal's start matter now
                head = _HEAD.match(line)
                name = head.group(1) if head else None
                if name == b"log" and (step is not None or not steps):
                    continue
                if name in (b"log_artifact", b"finish"):
                    continue
            event = _event(line)
            if event is None:
                continue
            if last is None:
                last = event
            kind = event.get("event")
            if kind == "log" and step is None and steps:
                value = event.get("step")
                if type(value) is int and not event.get("redo"):
                    step = value
            elif kind == "resume_run" and opening is None:
                opening = event
            elif kind == "init_run":
                return Tail(last, step, opening)
            if opening is not None and (step is not None or not steps):
                return Tail(last, step, opening)
        end = start
        chunk *= 4
    return Tail(last, step, opening)


def _event(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:  # a torn line: a write cut short by a kill
        return None
    return event if isinstance(event, dict) else None


def read_head(path: str | os.PathLike) -> dict[str, Any] | None:
    """A journal's first event (its `init_run`), None when it has none or it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return _event(fh.readline())
    except OSError:
        return None


def tail_step(path: str | os.PathLike) -> int | None:
    """The highest step a journal records (None: no journal, or no step yet)."""
    return read_tail(path).last_step


__all__ = [
    "Artifact",
    "Attempt",
    "Journal",
    "Row",
    "Tail",
    "iter_events",
    "read_head",
    "read_journal",
    "read_tail",
    "tail_step",
]
