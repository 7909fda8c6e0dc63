"""Writing a run's journal: `JournalWriter`, one event per line, on disk when a call returns."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aexp.journal.format import encode, encode_metrics, now
from aexp.journal.tail import Tail, read_tail


def _end_torn_line(fd: int) -> None:
    """Close off a torn last line (a write cut short by a kill or a full disk) with a newline,
    so the next event starts a line of its own: glued to the torn bytes, it would be lost."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")


def append_line(fd: int, data: bytes) -> None:
    """Append `data` (one line of a JSONL file) through `fd` (opened O_APPEND) whole, or not at
    all: where a full disk or a quota cuts the write short and the rest is refused, the part
    written is taken back (truncating frees space, so it succeeds on a full disk) and the error
    raised. A line glued to a torn one would be lost with it. Only a kill between the two writes
    leaves a torn line (the journal's writer closes it off: `_end_torn_line`).
    Raises OSError (ENOSPC, EDQUOT, EIO...) when the line cannot be written."""
    written = os.write(fd, data)
    if written == len(data):
        return
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError:
        with contextlib.suppress(OSError):  # O_APPEND: the line ends where the file ends
            os.ftruncate(fd, os.fstat(fd).st_size - written)
        raise


def _relative_inside(path: str, job_path: str | None, link: bool | None = None) -> str | None:
    """`path` relative to `job_path` when it plainly lies inside it (`job_path` + a separator +
    a relative path without `..` or links to resolve), else None. Spares the common case (a
    result file of the job, every attempt) the resolving of every component of both paths.
    `link`: whether `path` itself is a symbolic link, when the caller knows (None: asked)."""
    if job_path is None:
        return None
    prefix = os.fspath(job_path).rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix) :]
    # `..` is left to the long way: after a link it leads elsewhere than its lexical reading.
    if os.pardir in rest.split(os.sep):
        return None
    inside = os.path.normpath(rest)
    parts = inside.split(os.sep)
    if os.path.isabs(inside) or inside == os.curdir:
        return None
    # A symbolic link inside the job could point anywhere: resolve those the long way.
    where = prefix
    for part in parts[:-1]:
        where += part
        if os.path.islink(where):
            return None
        where += os.sep
    if os.path.islink(path) if link is None else link:
        return None
    return inside


class JournalWriter:
    """Appends events to one run's journal; each is on disk (in the kernel) when a call returns.

    The file is opened on the first event (or by `tail`) and kept open until `close`. `new`:
    the run has no journal yet, so its directories are made at once (two `mkdir`s) instead of
    after a failed open. Not thread-safe: one writer per attempt, used from the thread that logs.
    Raises OSError when the file cannot be written (read-only workspace, full disk).

    The attempt's progress, for the stall watch (aexp.state.stall_bound): `opened_at` (when its
    `resume_run` was written), `progress_at` (its last `log` or `log_artifact`) and `pace_s` (the
    longest gap between two of those), all on this process's monotonic clock.
    """

    def __init__(self, path: str | os.PathLike, *, new: bool = False) -> None:
        self._file = os.fspath(path)  # a string: the hot path makes no Path objects
        self._fd: int | None = None
        self._new = new
        self._checked = False  # a torn last line closed off (before this writer's first event)
        self.opened_at: float | None = None
        self.progress_at: float | None = None
        self.pace_s: float | None = None

    def _open(self) -> int:
        # A plain O_APPEND descriptor: one `write` system call per event, nothing buffered in
        # this process (what a SIGKILL could lose), no text layer on the hot path. O_RDWR: the
        # torn-line check and `tail` read through it.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        run_dir = os.path.dirname(self._file)
        if self._new:
            with contextlib.suppress(FileExistsError):
                os.mkdir(os.path.dirname(run_dir))
            with contextlib.suppress(FileExistsError):
                os.mkdir(run_dir)
            self._checked = True  # a journal made here has no torn line
        try:
            fd = os.open(self._file, flags, 0o644)
        except FileNotFoundError:  # the run's first event: make its directory (once)
            os.makedirs(run_dir, exist_ok=True)
            fd = os.open(self._file, flags, 0o644)
        self._fd = fd
        return fd

    def tail(self) -> Tail:
        """The journal's tail as it stands (`read_tail`), read through this writer's descriptor
        (opening the journal, and creating an empty one where there is none)."""
        fd = self._fd if self._fd is not None else self._open()
        return read_tail(self._file, fd=fd)

    @property
    def path(self) -> Path:
        """The journal's file."""
        return Path(self._file)

    def _append(self, line: str) -> None:
        fd = self._fd
        if fd is None:
            fd = self._open()
        if not self._checked:
            # Only before this writer's first event: a reader of the tail must never see a
            # newline added into a line another process is writing.
            _end_torn_line(fd)
            self._checked = True
        append_line(fd, line.encode())

    def event(self, event: str, **fields: Any) -> None:
        """Append one event with `fields` (JSON data; non-finite floats are refused)."""
        self._append(encode({"timestamp": now(), "event": event, **fields}) + "\n")

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
        binding: Mapping[str, Any] | None = None,
        statepoint: Mapping[str, Any] | None = None,
    ) -> None:
        """The run was created (bound): what every backend is told about it. `binding`: the
        job's binding to the run, when the journal is where it is recorded first (a job's first
        attempt binds it and records the binding in the job document only when it ends).
        `statepoint`: the job's state point, whole (the config holds it flattened, which loses
        an empty mapping): what rebuilds a lost state point file (aexp.statepoints)."""
        fields: dict[str, Any] = {
            "run_id": run_id,
            "project": project,
            "group": group,
            "tags": list(tags),
            "config": dict(config),
            "notes": notes,
            "offline": bool(offline),
            "backends": list(backends),
        }
        if binding is not None:
            fields["binding"] = dict(binding)
        if statepoint is not None:
            fields["statepoint"] = dict(statepoint)
        self.event("init_run", **fields)

    def resume_run(self, *, attempt: int, **where: Any) -> None:
        """Execution attempt number `attempt` (1, 2, ...) opened the run; `where` says where."""
        self.event("resume_run", attempt=attempt, **where)
        self.opened_at, self.progress_at, self.pace_s = time.monotonic(), None, None

    def _progressed(self) -> None:
        now = time.monotonic()
        last = self.progress_at
        if last is not None and (self.pace_s is None or now - last > self.pace_s):
            self.pace_s = now - last
        self.progress_at = now

    def log(self, metrics: Mapping[str, Any], step: int | None, *, redo: bool = False) -> None:
        """One row of metrics (already cleaned by `clean_metrics`) at `step`.

        The hot path of every training loop: one encoding of the metrics, one write. The line is
        the text `encode` gives the whole event, built around the metrics' own encoding.
        """
        try:
            body = encode(metrics)
        except ValueError:  # NaN or infinity among the values
            metrics, keys = encode_metrics(metrics)
            body = encode(metrics) + ', "nonfinite": ' + encode(keys)
        line = '{"timestamp": "' + now() + '", "event": "log", "metrics": ' + body
        if step is not None:
            line += f', "step": {int(step)}'
        if redo:
            line += ', "redo": true'
        self._append(line + "}\n")
        self._progressed()

    def log_artifact(
        self,
        name: str,
        path: str | os.PathLike,
        size_bytes: int,
        *,
        job_path: str | None = None,
        link: bool | None = None,
    ) -> None:
        """A file or directory attached to the run; stored relative to `job_path` when inside it,
        so the journal stays right when the project is moved or copied. `link`: whether `path`
        is a symbolic link, when the caller has just looked (None: looked at here)."""
        stored = _relative_inside(os.fspath(path), job_path, link)
        if stored is None:
            stored = str(Path(path).resolve())
            if job_path is not None:
                with contextlib.suppress(ValueError):
                    inside = os.path.relpath(stored, Path(job_path).resolve())
                    if not inside.startswith(os.pardir):
                        stored = inside
        self.event("log_artifact", name=name, path=stored, size_bytes=int(size_bytes))
        self._progressed()

    def checkpoint(self, *, seq: int, last_step: int | None) -> None:
        """Checkpoint number `seq` was written, after the row at `last_step` (None: before any);
        an attempt resumed from it repeats nothing logged up to there."""
        self.event("checkpoint", seq=int(seq), last_step=last_step)
        self._progressed()

    def finish(
        self,
        exit_code: int,
        *,
        preempted: bool = False,
        attempt: int | None = None,
        **measured: Any,
    ) -> None:
        """Attempt number `attempt` (None: not known) closed the run with `exit_code`
        (preempted: stopped from outside). `measured`: what the attempt used and how it ended,
        as JSON values (`wall_s`, `peak_rss_mb`, `stalled`: docs/job-document.md)."""
        fields: dict[str, Any] = {"exit_code": int(exit_code), "preempted": bool(preempted)}
        if attempt is not None:
            fields["attempt"] = attempt
        fields.update(measured)
        self.event("finish", **fields)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


__all__ = ["JournalWriter"]
