"""The noop backend: the run's journal and nothing else. No network, no SDK.

Every run is its journal, `<job workspace>/tracker_log/<run_id>/events.jsonl` (or
`<log_root>/<run_id>/events.jsonl` when the adapter is used outside a signac job), one JSON event
per line as aexp.journal describes: `init_run`, `resume_run`, `log`, `log_artifact`, `finish`.
Each line is flushed as it is written, so a crash loses at most the line being written.

In the workflow every backend's run already has this journal, so the noop backend adds nothing to
it (`feed = "journal"`); used on its own, the adapter writes the journal itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aexp.journal import JOURNAL_DIR, JOURNAL_FILE, Journal, JournalWriter, read_journal
from aexp.trackers.base import (
    RunHandle,
    RunRecord,
    TrackerAdapter,
    TrackerUsageError,
    clean_metrics,
)

# The names of the layout before the journal had its own module.
EVENTS_FILE = JOURNAL_FILE
LOG_DIR = JOURNAL_DIR


class NoopAdapter(TrackerAdapter):
    """Tracker backend that is the run's JSONL journal; always available.

    `log_root` replaces the per-job location (for use outside a signac job, e.g. in unit tests).
    `workspace` is where `list_runs` looks for per-job journals (default: the signac workspace of
    the project containing the current directory).
    """

    name = "noop"
    feed = "journal"

    def __init__(
        self, log_root: str | os.PathLike | None = None, workspace: str | os.PathLike | None = None
    ) -> None:
        self.log_root = Path(log_root) if log_root is not None else None
        self.workspace = Path(workspace) if workspace is not None else None

    def _events_path(self, run_id: str, workdir: str | Path | None) -> Path:
        if self.log_root is not None:
            return self.log_root / run_id / JOURNAL_FILE
        if workdir is None:
            raise TrackerUsageError(
                "the noop backend needs the job's workspace directory or a log_root to write to."
            )
        return Path(workdir, JOURNAL_DIR, run_id, JOURNAL_FILE)

    @staticmethod
    def _writer(handle: RunHandle) -> JournalWriter:
        writer = handle.extra.get("_journal")
        if writer is None:
            writer = handle.extra["_journal"] = JournalWriter(handle.extra["events"])
        return writer

    # -- the contract ----------------------------------------------------------------------
    def init_run(
        self,
        *,
        project: str,
        group: str,
        tags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        notes: str | None = None,
        offline: bool = False,
        workdir: str | Path | None = None,
        run_id: str | None = None,
    ) -> RunHandle:
        run_id = run_id or os.urandom(4).hex()  # 8 random hex digits
        events = self._events_path(run_id, workdir)
        handle = RunHandle(
            id=run_id, url=None, project=project, group=group, extra={"events": str(events)}
        )
        self._writer(handle).init_run(
            run_id=run_id,
            project=project,
            group=group,
            tags=list(tags),
            config=dict(config or {}),
            notes=notes,
            offline=offline,
            backends=[self.name],
        )
        return handle

    def resume_run(
        self, handle: RunHandle, *, workdir: str | Path | None = None, attempt: int = 1
    ) -> RunHandle:
        # Re-derived from the job's directory when known (the job may have moved since binding).
        if workdir is not None or self.log_root is not None:
            events = self._events_path(handle.id, workdir)
        else:
            events = Path(handle.extra["events"])
        resumed = RunHandle(
            id=handle.id,
            url=handle.url,
            project=handle.project,
            group=handle.group,
            extra={**handle.persistent_extra(), "events": str(events)},
        )
        self._writer(resumed).resume_run(attempt=attempt)
        return resumed

    def log(
        self, handle: RunHandle, metrics: Mapping[str, Any], *, step: int | None = None
    ) -> None:
        self._writer(handle).log(clean_metrics(metrics), step)

    def log_artifact(self, handle: RunHandle, name: str, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise TrackerUsageError(f"artifact {name!r}: {path} does not exist.")
        size = (
            sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else path.stat().st_size
        )
        # The journal sits at <job>/tracker_log/<run>/events.jsonl: the job is three levels up.
        events = Path(handle.extra["events"])
        job_path = None if self.log_root is not None else str(events.parents[2])
        self._writer(handle).log_artifact(name, path, size, job_path=job_path)

    def finish(self, handle: RunHandle, *, exit_code: int = 0, preempted: bool = False) -> None:
        writer = self._writer(handle)
        try:
            writer.finish(exit_code, preempted=preempted)
        finally:
            writer.close()
            handle.extra.pop("_journal", None)

    def list_runs(self, *, project: str, group_prefix: str = "") -> list[RunRecord]:
        records = []
        for events in self._event_files():
            journal = read_journal(events)
            # Every run has a journal; the noop backend's runs are those it was chosen for.
            if self.name not in journal.init.get("backends", [self.name]):
                continue
            record = record_of(journal)
            if record and record.project == project and record.group.startswith(group_prefix):
                records.append(record)
        return sorted(records, key=lambda r: (r.group, r.id))

    def _event_files(self) -> Iterator[Path]:
        if self.log_root is not None:
            yield from self.log_root.glob(f"*/{JOURNAL_FILE}")
            return
        workspace = self.workspace
        if workspace is None:
            from aexp.jobs import open_project

            workspace = Path(open_project().workspace)
        if not workspace.is_dir():
            return
        # Look only where runs live (<job>/tracker_log/<run>/): cost grows with jobs, not files.
        for job_dir in os.scandir(workspace):
            log_dir = Path(job_dir.path) / JOURNAL_DIR
            if log_dir.is_dir():
                yield from log_dir.glob(f"*/{JOURNAL_FILE}")


def record_of(journal: Journal) -> RunRecord | None:
    """One journal as a RunRecord (None if it has no `init_run` event)."""
    if not journal.init:
        return None
    last = journal.last_attempt
    return RunRecord(
        id=journal.run_id,
        project=journal.project,
        group=journal.group,
        state=journal.state,
        tags=[str(t) for t in journal.init.get("tags") or []],
        config=journal.config,
        last_metrics=journal.summary,
        exit_code=last.exit_code if last else None,
        path=str(journal.path.parent),
    )


def read_event_log(path: str | os.PathLike) -> RunRecord | None:
    """Summarise one events.jsonl into a RunRecord (None if it has no init_run event).

    A torn last line (crash while writing) is ignored.
    """
    return record_of(read_journal(path))


__all__ = ["EVENTS_FILE", "LOG_DIR", "NoopAdapter", "read_event_log", "record_of"]
