"""Reading a run's whole journal (`read_journal`); its tail is aexp.journal.tail's."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aexp.journal.format import decode_metrics
from aexp.journal.tail import parse_event


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
    slurm_job_id: str | None = None  # the SLURM job it ran in (None: not in SLURM)
    wall_s: float | None = None  # what its `finish` recorded (None: not recorded)
    peak_rss_mb: float | None = None
    stalled: bool = False  # stopped because its journal stopped progressing (on_stall)

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
                slurm_job = event.get("slurm_job_id")
                current = Attempt(
                    number,
                    started_at=stamp,
                    host=event.get("host"),
                    slurm_job_id=slurm_job if isinstance(slurm_job, str) else None,
                )
                journal.attempts.append(current)
            elif kind == "finish":
                attempt = opened()
                code = event.get("exit_code")
                attempt.exit_code = code if type(code) is int else 0
                attempt.preempted = bool(event.get("preempted"))
                attempt.ended_at = stamp
                attempt.wall_s = _number(event.get("wall_s"))
                attempt.peak_rss_mb = _number(event.get("peak_rss_mb"))
                attempt.stalled = event.get("stalled") is True
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


def _number(value: Any) -> float | None:
    """A finite number of a journal's event as a float; None for anything else."""
    if type(value) in (int, float) and value == value and abs(value) != float("inf"):
        return float(value)
    return None


def read_head(path: str | os.PathLike) -> dict[str, Any] | None:
    """A journal's first event (its `init_run`), None when it has none or it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return parse_event(fh.readline())
    except OSError:
        return None


__all__ = [
    "Artifact",
    "Attempt",
    "Journal",
    "Row",
    "iter_events",
    "read_head",
    "read_journal",
]
