"""One record per job, read from its state point and its document: what every results view
starts from (`aexp runs`, `aexp best`, `aexp plot`, the dashboard).

Reading a record costs one parse of the state point file and one of the job document (read
from disk as signac lays them out, aexp.results.workspace); nothing of the run's journal. The
last value of each metric is the binding's `summary` (recorded when an attempt ends); reductions
and curves read the journal (aexp.results.reduce, aexp.results.curves) only when asked.

A job's state is decided in one place, `state_of`: every results view (table, groups, best,
plots, dashboard) reads it from there.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aexp.binding import backend_parts, get_binding
from aexp.errors import BindingError
from aexp.jobdoc import JobDir, peek_doc
from aexp.journal import JOURNAL_DIR, JOURNAL_FILE
from aexp.results.select import CORRUPT, UNBOUND, Selection
from aexp.results.workspace import job_dirs, read_statepoint, root_of
from aexp.spec import spec_of
from aexp.state import STALE, JobState, job_state
from aexp.sync.rules import backend_needs_sync, unsynced_backends
from aexp.trackers import ADAPTERS

# Strict JSON keeps non-finite floats as these strings (aexp.jobdoc.strict_json).
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass
class JobRecord:
    """What results views know about one job.

    `binding` is `job.doc["tracker"]` as stored (None: unbound or corrupt); `error` the reason a
    corrupt job's document cannot be read. `statepoint` is the job's full state point. `state`
    is the job's state as every view selects and reports it (`state_of`: `stale` for a running
    job whose attempt is known dead), `shown` the word a table prints (`stalled` too).
    """

    job_id: str
    path: str
    statepoint: dict[str, Any]
    group: str | None = None
    status: str | None = None
    binding: dict[str, Any] | None = None
    error: str | None = None
    state: str = UNBOUND  # `state_of` the job when it was read
    shown: str = UNBOUND  # the state as tables show it: `stalled`/`stale` for such a running job
    extras: dict[str, Any] = field(default_factory=dict)  # computed columns, by name

    @property
    def run_id(self) -> str | None:
        return self.binding["run_id"] if self.binding else None

    @property
    def backend(self) -> str | None:
        return self.binding["backend"] if self.binding else None

    @property
    def backends(self) -> list[str]:
        """Every backend mirroring the run, the primary first."""
        return list(backend_parts(self.binding)) if self.binding else []

    @property
    def offline(self) -> bool | None:
        return bool(self.binding.get("offline")) if self.binding else None

    @property
    def backend_label(self) -> str | None:
        """The backends as `aexp runs` shows them: "wandb-offline", "noop", "wandb-offline+mlflow"
        (a live backend run offline gets "-offline"; the journal and replayed ones never do)."""
        if not self.binding:
            return None
        offline = self.offline
        return "+".join(
            f"{name}-offline"
            if offline and getattr(ADAPTERS.get(name), "feed", "live") == "live"
            else name
            for name in self.backends
        )

    @property
    def urls(self) -> dict[str, str]:
        """{backend: the run's web page} for the backends that know one (after a sync)."""
        if not self.binding:
            return {}
        urls = {
            name: part["url"]
            for name, part in backend_parts(self.binding).items()
            if part.get("url")
        }
        if self.binding.get("url") and self.backend not in urls:
            urls[self.backend] = self.binding["url"]
        return urls

    @property
    def url(self) -> str | None:
        return self.binding.get("url") if self.binding else None

    @property
    def unsynced(self) -> list[str] | None:
        """The backends that receive the run from a login node and do not hold it yet
        (aexp.sync.rules.unsynced_backends: what `status` and `aexp show` say per backend);
        None where no backend of the run is synced from a login node."""
        if not self.binding:
            return None
        offline = bool(self.binding.get("offline"))
        parts = backend_parts(self.binding)
        if not any(backend_needs_sync(n, p, offline=offline) for n, p in parts.items()):
            return None
        return unsynced_backends(self.binding)

    @property
    def synced(self) -> bool | None:
        """Whether every backend that receives the run from a login node holds it (`unsynced`);
        None where syncing does not apply."""
        unsynced = self.unsynced
        return None if unsynced is None else not unsynced

    @property
    def summary(self) -> dict[str, Any]:
        """The last value of every metric, as recorded when the last attempt ended; strict
        JSON's "NaN"/"Infinity"/"-Infinity" strings are read back as floats."""
        summary = (self.binding or {}).get("summary") or {}
        return {key: decode_value(value) for key, value in summary.items()}

    @property
    def journal(self) -> str | None:
        """The path of the run's journal (it may not exist yet)."""
        if not self.run_id:
            return None
        # journal_path's layout, joined as a string: this runs once per job of a table.
        return os.sep.join((self.path, JOURNAL_DIR, self.run_id, JOURNAL_FILE))

    @property
    def previous_runs(self) -> list[dict[str, Any]]:
        return list((self.binding or {}).get("previous_runs") or [])


def decode_value(value: Any) -> Any:
    """A stored metric value: the strict-JSON stand-ins for NaN and infinities become floats."""
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    return value


def _warn(message: str) -> None:
    print(f"aexp: warning: {message}", file=sys.stderr)


def state_of(job: Any, doc: Mapping[str, Any] | None) -> str:
    """A job's state as every results view selects and reports it: aexp.state.job_state's
    (the document, and the journal of an attempt that has not recorded its start yet), `stale`
    for a running job whose attempt is known dead (no view calls it running), `unbound` for a
    job without a binding, `corrupt` (doc None) for a job whose document or binding cannot be
    read. The one place results read a job's state from."""
    seen = seen_state(job, doc)
    return STALE if seen.stale else seen.state


_CORRUPT_STATE = JobState(CORRUPT)


def seen_state(job: Any, doc: Mapping[str, Any] | None) -> JobState:
    """`state_of`'s JobState (aexp.state.JobState: its `shown` word, `stalled`, `stale`)."""
    if doc is None:
        return _CORRUPT_STATE
    return job_state(job, doc)


def read_record(
    job: Any, statepoint: Mapping[str, Any], group_by: tuple[str, ...] = ()
) -> JobRecord:
    """The record of one job (its document read once, not kept in aexp's document cache);
    `job` is a signac Job or an aexp.jobdoc.JobDir.

    A document or binding that cannot be read gives a `corrupt` record whose `error` says why;
    never raises for it.
    """
    if type(statepoint) is not dict:
        statepoint = dict(statepoint)
    record = JobRecord(job_id=job.id, path=job.path, statepoint=statepoint)
    try:
        doc = peek_doc(job)
        binding = get_binding(job, doc)
    except BindingError as exc:
        record.error = str(exc)
        record.state = record.shown = state_of(job, None)
        return record
    seen = seen_state(job, doc)
    record.state, record.shown = STALE if seen.stale else seen.state, seen.shown
    record.status = doc.get("status")
    # The binding as the job's state has it: a first attempt's run's journal holds it before
    # the document does (aexp.binding.pending_binding), so every view names the same run.
    binding = binding if binding is not None else seen.binding
    if binding is None:
        limina = doc.get("limina") if isinstance(doc.get("limina"), Mapping) else None
        record.group = spec_of(statepoint, limina, job.id, group_by=group_by)["group"]
    else:
        record.binding = binding if type(binding) is dict else dict(binding)
        record.group = binding.get("group")
    return record


def iter_records(
    project: Any,
    selection: Selection | None = None,
    *,
    group_by: tuple[str, ...] = (),
    warn: bool = True,
) -> Iterator[JobRecord]:
    """The records of the project's jobs that `selection` selects, in job-id order, one at a
    time (a caller that keeps only what it shows holds no more). `project`: a signac Project or
    the project's directory.

    A job whose state point file is missing or damaged is skipped (with one warning line on
    stderr when `warn`); a job whose document is damaged is a `corrupt` record (warned about
    too).
    """
    selection = selection or Selection()
    wanted = selection.job_ids
    for job_id, path in job_dirs(root_of(project)):
        if wanted is not None and job_id not in wanted:
            continue
        statepoint = read_statepoint(path)
        if statepoint is None:
            if warn:
                from aexp.statepoints import damage_line

                _warn(damage_line(JobDir(job_id, path)))
            continue
        if not selection.matches_statepoint(statepoint):
            continue
        record = read_record(JobDir(job_id, path), statepoint, group_by)
        if record.error is not None and warn:
            _warn(record.error)
        if selection.matches_state(record.shown):
            yield record


__all__ = ["JobRecord", "decode_value", "iter_records", "read_record", "state_of"]
