"""`aexp status`: where every job stands, as one document (`aexp.status/1`).

    status_document(root)    {"schema": "aexp.status/1", "jobs": [...], "counts": {...},
                              "cursor": "c1-...", ...}

One entry per job, its state read by aexp.state.job_state (the one definition of a job's
state: one read of its document, and the tail of its run's journal for a job bound, running or
preempted; no signac, no flow):

    job_id      the signac job id
    state       unbound, corrupt, bound, running, preempted, completed, failed, finished
                (aexp.state.JOB_STATES)
    stale       running, but its attempt is known dead (`execute` resumes it)
    stalled     running and alive, but its journal has logged nothing for longer than its
                own pace allows (aexp.state.is_stalled)
    shown       the state as every view prints it (aexp.state.JobState.shown: `stale` or
                `stalled` for such a running job, else `state`)
    run_id      the bound run (null: unbound)
    attempts    execution attempts of the run so far (a running one included)
    last_step   the last step the run logged (-1: none yet; null: unbound)
    error       the last line of the experiment's error (a failed run), else null
    problem     why a corrupt job cannot be read, else null
    backends    {name: {"synced": bool, "needs_sync": bool}} for each backend of the run

`job_seen` is the one place a job's entry is made: the full status and the changes since a
cursor (aexp.reports.changes) both call it, so they agree by construction.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aexp.binding import backend_parts
from aexp.contract import document
from aexp.errors import AexpError
from aexp.jobdoc import JobDir, now_iso, peek_doc
from aexp.jobs import is_job_dir, is_job_id, stray_dir_message
from aexp.schema import BOUND, PREEMPTED, RUNNING
from aexp.state import (
    CORRUPT,
    JOB_STATES,
    SHOWN_STATES,
    STALE,
    STALLED,
    UNBOUND,
    JobState,
    Mark,
    job_state,
)

STATUS = "aexp.status/1"


@dataclass(frozen=True, slots=True)
class Seen:
    """A job as one look at it found it.

    `entry` is its status entry; `key` what a change is judged by (`state`, `stale`, whether
    every backend is synced, whether one needs a sync, and a checksum of those with the run id,
    attempts, error and problem); `probe` what a later poll looks at without reading the job
    (aexp.reports.changes), None when every change of the job's state moves its directory's mtime:
    the run of a job bound, running or preempted (an attempt's start and end are in its run's
    journal first: aexp.state), and a live attempt's heartbeat and where it runs (`is_stale`
    judges it: a dead attempt writes nothing). `state` is the job's state as
    aexp.state.job_state gave it.
    """

    entry: dict[str, Any]
    key: bytes
    probe: dict[str, Any] | None = None
    state: JobState | None = None


def _backends(binding: Mapping[str, Any]) -> dict[str, dict[str, bool]]:
    from aexp.sync.rules import backend_needs_sync

    offline = bool(binding.get("offline"))
    finished = bool(binding.get("finished_at"))
    out = {}
    for name, part in backend_parts(binding).items():
        synced = bool(part.get("synced_at"))
        due = backend_needs_sync(name, part, offline=offline)
        out[name] = {"synced": synced, "needs_sync": finished and due and not synced}
    return out


def _key(entry: Mapping[str, Any]) -> bytes:
    parts = entry["backends"].values()
    flags = (
        bool(entry["stale"])
        | (bool(parts) and all(p["synced"] for p in parts)) << 1
        | any(p["needs_sync"] for p in parts) << 2
        | bool(entry["stalled"]) << 3
    )
    text = repr(
        (
            entry["state"],
            flags,
            entry["run_id"],
            entry["attempts"],
            entry["error"],
            entry["problem"],
        )
    )
    check = zlib.crc32(text.encode("utf-8"))
    return bytes((JOB_STATES.index(entry["state"]), flags)) + check.to_bytes(4, "big")


def _entry(job_id: str, state: str, **members: Any) -> dict[str, Any]:
    entry = {
        "job_id": job_id,
        "state": state,
        "stale": False,
        "stalled": False,
        "shown": state,
        "run_id": None,
        "attempts": 0,
        "last_step": None,
        "error": None,
        "problem": None,
        "backends": {},
    }
    entry.update(members)
    return entry


def job_seen(workspace: str, job_id: str, stale_after: float) -> Seen:
    """The job `workspace/job_id` as its state says now (aexp.state.job_state; see the module
    docstring)."""
    path = os.path.join(workspace, job_id)
    job = JobDir(job_id, path)
    try:
        doc = peek_doc(job)
    except AexpError as exc:  # not JSON: job_state would say the same
        doc, seen = None, JobState(CORRUPT, problem=str(exc))
    else:
        seen = job_state(job, doc, stale_after=stale_after)
    if seen.state == CORRUPT:
        entry = _entry(job_id, CORRUPT, problem=seen.problem)
        return Seen(entry, _key(entry), None, seen)
    if seen.state == UNBOUND:
        problem = (
            None if doc or is_job_dir(workspace, job_id) else stray_dir_message(workspace, job_id)
        )
        entry = _entry(job_id, CORRUPT if problem else UNBOUND, problem=problem)
        return Seen(entry, _key(entry), None, seen)
    binding = seen.binding or {}
    attempts = binding.get("attempts", 0)
    if seen.mark is not None and seen.mark.attempt is not None:
        attempts = max(attempts, seen.mark.attempt)
    entry = _entry(
        job_id,
        seen.state,
        stale=seen.stale,
        stalled=seen.stalled,
        shown=seen.shown,
        run_id=binding["run_id"],
        attempts=attempts,
        last_step=binding.get("last_step", -1),
        error=binding.get("error") if seen.state != RUNNING else None,
        backends=_backends(binding),
    )
    probe = None
    if seen.state in (BOUND, RUNNING, PREEMPTED):  # the states an attempt's journal moves
        probe = {"run_id": binding["run_id"]}
        if seen.state == RUNNING and not seen.stale and seen.mark is not None:
            probe.update(probe_of(seen.mark))
    return Seen(entry, _key(entry), probe, seen)


def probe_of(mark: Mark) -> dict[str, Any]:
    """What `is_stale` needs of a running attempt, as a document records it (JSON)."""
    return {
        "heartbeat_at": mark.heartbeat_at,
        "attempt": {
            "host": mark.host,
            "pid": mark.pid,
            "slurm_job_id": mark.slurm_job_id,
            "slurm_restart_count": mark.slurm_restart_count,
        },
    }


def job_ids(workspace: str) -> list[str]:
    """The names of `workspace` that are job ids (sorted; none without a workspace)."""
    try:
        names = os.listdir(workspace)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if is_job_id(n))


def counts_of(entries: Any) -> dict[str, int]:
    """Jobs per state, plus `stale` (running and dead), `stalled` (running, alive, its journal
    silent too long) and `unsynced` (a backend needs a sync)."""
    counts = dict.fromkeys(JOB_STATES, 0) | {STALE: 0, STALLED: 0, "unsynced": 0}
    for entry in entries:
        counts[entry["state"]] += 1
        counts[STALE] += entry["stale"]
        counts[STALLED] += entry["stalled"]
        counts["unsynced"] += any(p["needs_sync"] for p in entry["backends"].values())
    return counts


def status_document(
    root: str | os.PathLike,
    *,
    stale_after: float | None = None,
    cursor: bool = True,
    states: Sequence[str] = (),
    limit: int | None = None,
) -> dict[str, Any]:
    """The status of every job of the project at `root` (`aexp.status/1`).

    `stale_after`: seconds after which a silent running attempt is dead (None: signac.rc's
    `[workflow] stale_after`). With `cursor`, the document carries a cursor for
    `changes_document` (None when the project's `.aexp/` cannot be written). `jobs` lists only
    the jobs in `states` (empty: every job; `selected`: by the word each view prints for it),
    at most `limit` of them (`omitted` says how many more); `total` and `counts` are always
    the whole project's, and the cursor covers every job.
    """
    from aexp.reports import cursors

    unknown = [s for s in states if s not in SHOWN_STATES]
    if unknown:
        raise AexpError(f"unknown state {unknown[0]!r}; known states: {', '.join(SHOWN_STATES)}.")
    root = os.fspath(root)
    if stale_after is None:
        from aexp.settings import load_settings

        stale_after = load_settings(root).stale_after
    workspace = os.path.join(root, "workspace")
    clock = cursors.start_poll(root) if cursor else None
    seen = {job_id: job_seen(workspace, job_id, stale_after) for job_id in job_ids(workspace)}
    entries = [s.entry for s in seen.values()]
    shown = [e for e in entries if selected(e, states)]
    kept = shown if limit is None else shown[: max(limit, 0)]
    token = None
    if clock is not None:
        watch = {job_id: s.probe for job_id, s in seen.items() if s.probe is not None}
        token = cursors.save_cursor(root, clock, cursors.Table.of(seen), watch)
    return document(
        STATUS,
        project=root,
        at=now_iso(),
        stale_after=stale_after,
        total=len(entries),
        counts=counts_of(entries),
        jobs=kept,
        omitted=len(shown) - len(kept),
        cursor=token,
    )


def selected(entry: Mapping[str, Any], states: Sequence[str]) -> bool:
    """Whether a status entry is in `states` (empty: every entry), by the word every view
    prints for it (`shown`: "stale" is running and dead, "stalled" running, alive and silent
    too long, "running" a live attempt that progresses), as `aexp runs --state` selects."""
    return not states or entry["shown"] in states


__all__ = [
    "CORRUPT",
    "JOB_STATES",
    "STATUS",
    "UNBOUND",
    "Seen",
    "counts_of",
    "job_ids",
    "job_seen",
    "probe_of",
    "selected",
    "status_document",
]
