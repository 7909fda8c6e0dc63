"""The noop backend: every run is a JSONL event log on local disk, no network, no SDK.

Layout: `<job workspace>/tracker_log/<run_id>/events.jsonl` (or `<log_root>/<run_id>/events.jsonl`
when the adapter is used outside a signac job). One JSON object per line, each with an ISO-8601 UTC
`timestamp` and an `event`:

    init_run      project, group, tags, config, notes, offline
    resume_run    attempt               (an execution attempt re-opened the run)
    log           metrics, step
    log_artifact  name, path, size_bytes
    finish        exit_code, preempted

Each line is flushed as it is written, so a crash loses at most the line being written.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from aexp.trackers.base import (
    RunHandle,
    RunRecord,
    TrackerAdapter,
    TrackerUsageError,
    clean_metrics,
)

EVENTS_FILE = "events.jsonl"
LOG_DIR = "tracker_log"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# Values `clean_metrics` passes through unchanged when they have exactly these types.
class NoopAdapter(TrackerAdapter):
    """Tracker backend that writes JSONL event logs; always available.

    `log_root` replaces the per-job location (for use outside a signac job, e.g. in unit tests).
    `workspace` is where `list_runs` looks for per-job logs (default: the signac workspace of the
    project containing the current directory).
    """

    name = "noop"

    def __init__(
        self, log_root: str | os.PathLike | None = None, workspace: str | os.PathLike | None = None
    ) -> None:
        self.log_root = Path(log_root) if log_root is not None else None
        self.workspace = Path(workspace) if workspace is not None else None

    # -- where runs live -------------------------------------------------------------------
    def _run_dir(self, run_id: str, workdir: str | Path | None) -> Path:
        if self.log_root is not None:
            return self.log_root / run_id
        if workdir is None:
            raise TrackerUsageError(
                "the noop backend needs the job's workspace directory or a log_root to write to."
            )
        return Path(workdir) / LOG_DIR / run_id

    def _events_path(self, handle: RunHandle, workdir: str | Path | None) -> Path:
        # Re-derived from the job's directory when known (the job may have moved since binding).
        if workdir is None and self.log_root is None:
            return Path(handle.extra["events"])
        return self._run_dir(handle.id, workdir) / EVENTS_FILE

    def _open(self, handle: RunHandle) -> IO[str]:
        fh = handle.extra.get("_fh")
        if fh is None or fh.closed:
            path = Path(handle.extra["events"])
            try:
                fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the run's life
            except FileNotFoundError:  # the run's first event: make its directory (once)
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = open(path, "a", encoding="utf-8")  # noqa: SIM115
            handle.extra["_fh"] = fh
        return fh

    def _write(self, handle: RunHandle, event: dict[str, Any]) -> None:
        fh = self._open(handle)
        fh.write(json.dumps({"timestamp": _now(), **event}) + "\n")
        fh.flush()

    # -- the contract ----------------------------------------------------------------------
    def init_run(
        self,
        *,
        project: str,
        group: str,
        tags: list[str],
        config: Mapping[str, Any],
        notes: str | None,
        offline: bool,
        workdir: str | Path | None = None,
    ) -> RunHandle:
        run_id = os.urandom(4).hex()  # 8 random hex digits, as uuid4().hex[:8] (no uuid import)
        events = self._run_dir(run_id, workdir) / EVENTS_FILE
        handle = RunHandle(
            id=run_id, url=None, project=project, group=group, extra={"events": str(events)}
        )
        self._write(
            handle,
            {
                "event": "init_run",
                "project": project,
                "group": group,
                "tags": list(tags),
                "config": dict(config),
                "notes": notes,
                "offline": offline,
            },
        )
        return handle

    def resume_run(
        self, handle: RunHandle, *, workdir: str | Path | None = None, attempt: int = 1
    ) -> RunHandle:
        events = self._events_path(handle, workdir)
        resumed = RunHandle(
            id=handle.id,
            url=handle.url,
            project=handle.project,
            group=handle.group,
            extra={**handle.persistent_extra(), "events": str(events)},
        )
        self._write(resumed, {"event": "resume_run", "attempt": attempt})
        return resumed

    def log(
        self, handle: RunHandle, metrics: Mapping[str, Any], *, step: int | None = None
    ) -> None:
        # The hottest path of the backend: one line, built and flushed without intermediate dicts.
        row = clean_metrics(metrics)
        fh = handle.extra.get("_fh")
        if fh is None or fh.closed:
            fh = self._open(handle)
        if step is None:
            line = json.dumps({"timestamp": _now(), "event": "log", "metrics": row})
        else:
            line = json.dumps({"timestamp": _now(), "event": "log", "metrics": row, "step": step})
        fh.write(line + "\n")
        fh.flush()

    def log_artifact(self, handle: RunHandle, name: str, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise TrackerUsageError(f"artifact {name!r}: {path} does not exist.")
        size = (
            sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else path.stat().st_size
        )
        self._write(
            handle,
            {
                "event": "log_artifact",
                "name": name,
                "path": str(path.resolve()),
                "size_bytes": size,
            },
        )

    def finish(self, handle: RunHandle, *, exit_code: int = 0, preempted: bool = False) -> None:
        self._write(handle, {"event": "finish", "exit_code": exit_code, "preempted": preempted})
        fh = handle.extra.pop("_fh", None)
        if fh is not None:
            fh.close()

    def last_step(self, handle: RunHandle, *, workdir: str | Path | None = None) -> int | None:
        events = self._events_path(handle, workdir)
        try:
            with open(events, "rb") as fh:
                # Only the tail matters: read backwards until a log event with a step appears.
                size = fh.seek(0, os.SEEK_END)
                chunk = 1 << 16
                while True:
                    start = max(0, size - chunk)
                    fh.seek(start)
                    for line in reversed(fh.read().splitlines()):
                        if b'"event": "log"' in line:
                            with contextlib.suppress(json.JSONDecodeError):
                                step = json.loads(line).get("step")
                                if step is not None:
                                    return int(step)
                    if start == 0:
                        return None
                    chunk *= 4
        except FileNotFoundError:
            return None

    def list_runs(self, *, project: str, group_prefix: str = "") -> list[RunRecord]:
        records = []
        for events in self._event_files():
            record = read_event_log(events)
            if record and record.project == project and record.group.startswith(group_prefix):
                records.append(record)
        return sorted(records, key=lambda r: (r.group, r.id))

    def _event_files(self) -> Iterator[Path]:
        if self.log_root is not None:
            yield from self.log_root.glob(f"*/{EVENTS_FILE}")
            return
        workspace = self.workspace
        if workspace is None:
            import signac

            workspace = Path(signac.get_project().workspace)
        # Look only where runs live (<job>/tracker_log/<run>/): cost grows with jobs, not files.
        for job_dir in os.scandir(workspace):
            log_dir = Path(job_dir.path) / LOG_DIR
            if log_dir.is_dir():
                yield from log_dir.glob(f"*/{EVENTS_FILE}")


def read_event_log(path: str | os.PathLike) -> RunRecord | None:
    """Summarise one events.jsonl into a RunRecord (None if it has no init_run event).

    A torn last line (crash while writing) is ignored.
    """
    path = Path(path)
    record: RunRecord | None = None
    last: dict[str, Any] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = event.get("event")
            if kind == "init_run" and record is None:
                record = RunRecord(
                    id=path.parent.name,
                    project=event.get("project", ""),
                    group=event.get("group", ""),
                    state="bound",  # created, never executed
                    tags=list(event.get("tags", [])),
                    config=dict(event.get("config", {})),
                    path=str(path.parent),
                )
            elif record is None:
                continue
            elif kind == "log":
                last.update(event.get("metrics", {}))
                if record.state == "bound":
                    record.state = "running"
            elif kind == "resume_run":
                record.state, record.exit_code = "running", None
            elif kind == "finish":
                record.exit_code = event.get("exit_code", 0)
                if event.get("preempted"):
                    record.state = "preempted"
                else:
                    record.state = "finished" if record.exit_code == 0 else "failed"
    if record is not None:
        record.last_metrics = last
    return record
