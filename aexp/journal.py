"""The run journal: the job's own record of its run, one JSON event per line.

Every execution attempt appends to `<job workspace>/tracker_log/<run_id>/events.jsonl`, whatever
the tracker backends are; the noop backend is this journal and nothing else. Trackers are mirrors
of it: W&B is fed live during the attempt and repaired from the journal when it lost rows, MLflow
is fed from it at sync time, and results (tables, plots, the dashboard) read it directly.

Each line is a strict JSON object with an ISO-8601 UTC `timestamp` (microseconds) and an `event`:

    init_run      run_id, project, group, tags, config, notes, offline, backends
    resume_run    attempt (1, 2, ...), host, pid, slurm_job_id, slurm_restart_count
    log           metrics, step; "redo": true when the step is behind the run's step axis
                  (work re-done after a checkpoint); "nonfinite": [keys] whose values are the
                  strings "NaN", "Infinity" or "-Infinity" standing for those floats
    log_artifact  name, path (relative to the job's directory when inside it), size_bytes
    finish        exit_code, preempted

Every event is written with one `write` and flushed to the kernel before the call returns, so a
SIGKILL (the OOM killer, a node failure, SLURM's KILL after the grace period) loses at most the
event being written; a reader skips such a torn last line. docs/job-document.md ("The journal")
is the schema users read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOURNAL_DIR = "tracker_log"
JOURNAL_FILE = "events.jsonl"

# Strict JSON (jq, browsers and MLflow's REST API reject NaN and Infinity literals). An encoder
# made once: json.dumps with a non-default argument builds a new encoder on every call.
_encode = json.JSONEncoder(allow_nan=False).encode
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def journal_path(job_path: str | os.PathLike, run_id: str) -> Path:
    """Where the journal of run `run_id` of the job at `job_path` lives."""
    return Path(job_path, JOURNAL_DIR, run_id, JOURNAL_FILE)


# The date and time of the current second, formatted once per second: `log` sits on the hot path
# of every training step, and datetime's own formatting costs more than the rest of a row.
_second: tuple[int, str] = (-1, "")


def now() -> str:
    """The current time as the journal writes it: ISO-8601 UTC with microseconds
    (`datetime.now(UTC).isoformat(timespec="microseconds")`, e.g. 2026-01-05T09:30:00.123456+00:00).
    """
    global _second
    t = time.time()
    whole = int(t)
    second, text = _second
    if whole != second:
        text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (whole, text)
    return f"{text}.{int((t - whole) * 1_000_000):06d}+00:00"


def encode_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`metrics` with non-finite floats replaced by "NaN"/"Infinity"/"-Infinity", and their keys.

    The returned dict is `metrics` itself when every value is finite (nothing to replace).
    """
    keys = [
        key
        for key, value in metrics.items()
        if type(value) is float and not math.isfinite(value)  # bool/int are always finite
    ]
    if not keys:
        return dict(metrics), []
    replaced = dict(metrics)
    for key in keys:
        value = replaced[key]
        replaced[key] = "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return replaced, keys


def decode_metrics(event: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics of a `log` event with non-finite floats restored."""
    metrics = event.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    keys = event.get("nonfinite")
    if not keys:
        return metrics
    restored = dict(metrics)
    for key in keys:
        if isinstance(key, str) and restored.get(key) in _NONFINITE:
            restored[key] = _NONFINITE[restored[key]]
    return restored


class JournalWriter:
    """Appends events to one run's journal; each is on disk (in the kernel) when a call returns.

    The file is opened on the first event (its directory made then) and kept open until
    `close`. Not thread-safe: one writer per attempt, used from the thread that logs.
    Raises OSError when the file cannot be written (read-only workspace, full disk).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def _open(self) -> int:
        # A plain O_APPEND descriptor: one `write` system call per event, nothing buffered in
        # this process (what a SIGKILL could lose), no text layer on the hot path.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:  # the run's first event: make its directory (once)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)
        self._fd = fd
        return fd

    def _append(self, line: str) -> None:
        fd = self._fd
        if fd is None:
            fd = self._open()
        data = line.encode()
        written = os.write(fd, data)
        while written < len(data):  # a regular file takes it whole; a short write continues
            data = data[written:]
            written = os.write(fd, data)

    def event(self, event: str, **fields: Any) -> None:
        """Append one event with `fields` (JSON data; non-finite floats are refused)."""
        self._append(_encode({"timestamp": now(), "event": event, **fields}) + "\n")

    def init_run(
        self,
        *,
        run_id: str,
        project: str,
        group: str,
        tags: list[str],
        config: Mapping[str, Any],
        notes: str | None,
        offline: bool,
        backends: list[str],
    ) -> None:
        """The run was created (bound): what every backend is told about it."""
        self.event(
            "init_run",
            run_id=run_id,
            project=project,
            group=group,
            tags=list(tags),
            config=dict(config),
            notes=notes,
            offline=bool(offline),
            backends=list(backends),
        )

    def resume_run(self, *, attempt: int, **where: Any) -> None:
        """Execution attempt number `attempt` (1, 2, ...) opened the run; `where` says where."""
        self.event("resume_run", attempt=attempt, **where)

    def log(self, metrics: Mapping[str, Any], step: int | None, *, redo: bool = False) -> None:
        """One row of metrics (already cleaned by `clean_metrics`) at `step`.

        The hot path of every training loop: one encode, one write, one flush.
        """
        # The event's JSON built around the metrics' own encoding (the same text `_encode` gives
        # the whole event): one encoder call per row.
        try:
            body = _encode(metrics)
        except ValueError:  # NaN or infinity among the values
            metrics, keys = encode_metrics(metrics)
            body = _encode(metrics) + ', "nonfinite": ' + _encode(keys)
        line = '{"timestamp": "' + now() + '", "event": "log", "metrics": ' + body
        if step is not None:
            line += f', "step": {int(step)}'
        if redo:
            line += ', "redo": true'
        self._append(line + "}\n")

    def log_artifact(
        self, name: str, path: str | os.PathLike, size_bytes: int, *, job_path: str | None = None
    ) -> None:
        """A file or directory attached to the run; stored relative to `job_path` when inside it,
        so the journal stays right when the project is moved or copied."""
        stored = str(Path(path).resolve())
        if job_path is not None:
            with contextlib.suppress(ValueError):
                inside = os.path.relpath(stored, Path(job_path).resolve())
                if not inside.startswith(os.pardir):
                    stored = inside
        self.event("log_artifact", name=name, path=stored, size_bytes=int(size_bytes))

    def finish(self, exit_code: int, *, preempted: bool = False) -> None:
        """The attempt closed the run with `exit_code` (preempted: stopped by a signal)."""
        self.event("finish", exit_code=int(exit_code), preempted=bool(preempted))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# -- reading ----------------------------------------------------------------------------------
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


def read_tail(path: str | os.PathLike) -> tuple[dict[str, Any] | None, int | None]:
    """The journal's last readable event and its highest step, read from the end of the file.

    Steps only grow along the history (re-dos are behind it), so the step of the last `log`
    event that is not a re-do is the highest. Costs a read of the file's tail. (None, None):
    no journal yet.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None, None
    last: dict[str, Any] | None = None
    with fh:
        size = fh.seek(0, os.SEEK_END)
        chunk = 1 << 14
        while True:
            start = max(0, size - chunk)
            fh.seek(start)
            lines = fh.read(size - start).splitlines()
            if start > 0:
                lines = lines[1:]  # may start mid-line
            for line in reversed(lines):
                try:
                    event = json.loads(line)
                except ValueError:  # a torn line: a write cut short by a kill
                    continue
                if not isinstance(event, dict):
                    continue
                if last is None:
                    last = event
                step = event.get("step")
                if event.get("event") == "log" and type(step) is int and not event.get("redo"):
                    return last, step
            if start == 0:
                return last, None
            chunk *= 4


def tail_step(path: str | os.PathLike) -> int | None:
    """The highest step a journal records (None: no journal, or no step yet)."""
    return read_tail(path)[1]


__all__ = [
    "JOURNAL_DIR",
    "JOURNAL_FILE",
    "Artifact",
    "Attempt",
    "Journal",
    "JournalWriter",
    "Row",
    "decode_metrics",
    "encode_metrics",
    "iter_events",
    "journal_path",
    "now",
    "read_journal",
    "read_tail",
    "tail_step",
]
