"""`aexp status --json --since CURSOR`: what changed since a cursor, without reading every job.

The idea: a job document is only ever replaced whole (a temporary file renamed over it, by aexp
and by signac alike), and a rename in a directory moves that directory's mtime. So one `stat`
per job directory finds the jobs whose document (or any other file of theirs) changed since a
moment, and only those are read. Nothing that writes a document needs to know about cursors.

A moment is the file system's own clock, not this host's: each poll first touches
`.aexp/cursors/clock` and reads its mtime back (on NFS the server stamps both that file and the
job directories). A job changed before the touch is read by this poll; one changed after it has
a later mtime and is read by the next. Where the kernel does not serve the file system alone
(NFS, Lustre), attribute caches may show an mtime late, so the next poll looks back MARGIN_S
further.

Two changes leave a job's directory as it was. A running attempt that dies writes nothing:
for each job running at the poll, the cursor keeps its heartbeat and where it runs (its
`probe`), and the next poll judges them again (`is_stale`) without reading anything. And an
attempt's start is recorded in its run's journal first, in the document only a second later
(aexp.state: an attempt killed sooner never reaches it): for each job bound, running or
preempted, the next poll also looks at its journal's mtime (`_looked_again`).

What the client last saw of every job is kept in a table: the job ids, then 6 bytes per job
of the key its change is judged by (aexp.reports.status.Seen), so a job read again whose state
did not change (a heartbeat, a checkpoint) is not reported. While the workspace's own mtime
has not moved, no job was added or removed, and the table's ids stand in for a listing of it.
The cursors themselves, their tables and their clock, are aexp.reports.cursors'.
"""

from __future__ import annotations

import os
from typing import Any

from aexp.contract import document
from aexp.errors import AexpError
from aexp.jobdoc import now_iso
from aexp.jobs import is_job_id
from aexp.journal import journal_file
from aexp.reports.cursors import CursorError, load_cursor, save_cursor, start_poll, stat_ns
from aexp.reports.status import Seen, job_seen
from aexp.schema import FAILED, FINISHED, RUNNING
from aexp.state import JOB_STATES, is_stale

CHANGES = "aexp.status.changes/1"


def kind_of(old: bytes | None, new: Seen) -> str | None:
    """How a job changed, from its last key (None: the client never saw it) to how it is now;
    None when nothing the status reports changed. See docs/json.md, `aexp.status.changes/1`."""
    if old is None:
        return "created"
    if old == new.key:
        return None
    state, was = new.entry["state"], JOB_STATES[old[0]]
    if state == RUNNING:
        return new.entry["shown"]  # running, stale or stalled (aexp.state.JobState.shown)
    if state in (FINISHED, FAILED) and was == state:
        return "synced" if new.key[1] & 2 and not old[1] & 2 else "updated"
    return state  # finished, failed, preempted, completed, bound, unbound, corrupt


def _changed_dirs(workspace: str, names: list[str], threshold: int) -> set[str]:
    """The job ids among `names` whose directory's mtime is at or after `threshold`."""
    # One stat per job: the whole cost of a quiet poll, so a bare comprehension, each name
    # resolved from the workspace's descriptor (a path walk of one component, not the whole).
    try:
        fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return set()
    try:
        mtimes = [os.stat(name, dir_fd=fd).st_mtime_ns for name in names]
    except FileNotFoundError:  # a job removed meanwhile
        mtimes = [stat_ns(os.path.join(workspace, name)) or 0 for name in names]
    finally:
        os.close(fd)
    return {n for n, m in zip(names, mtimes, strict=True) if m >= threshold}


def _looked_again(
    workspace: str,
    watch: dict[str, Any],
    threshold: int,
    stale_after: float,
    skip: set[str],
) -> set[str]:
    """The watched jobs (not in `skip`) whose directory did not move but which may have changed
    all the same: a running attempt now judged dead (`is_stale` of its probe), or a run's
    journal written at or after `threshold` (an attempt started or ended that the job's
    document does not record yet)."""
    found = set()
    try:
        fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return found
    try:
        for job_id, probe in watch.items():
            if job_id in skip:
                continue
            if "heartbeat_at" in probe and is_stale(probe, stale_after):
                found.add(job_id)
                continue
            run_id = probe.get("run_id")
            if not isinstance(run_id, str):  # a cursor of an earlier aexp: look
                found.add(job_id)
                continue
            try:  # relative to the workspace: a walk of the job's own path only
                mtime = os.stat(journal_file(job_id, run_id), dir_fd=fd).st_mtime_ns
            except OSError:
                continue
            if mtime >= threshold:
                found.add(job_id)
    finally:
        os.close(fd)
    return found


def changes_document(
    root: str | os.PathLike,
    since: str,
    *,
    stale_after: float | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """What changed in the project at `root` since cursor `since` (`aexp.status.changes/1`):
    one entry per job whose state, staleness, run, attempts, error or sync changed, with its
    status entry now (null for a removed job), and a new cursor. At most `limit` changes are
    listed (`omitted` says how many more; `counts` counts them all): the cursor moves past them
    all, so a poll that omitted some is followed by a full status for their details.

    Raises CursorError for an unknown or expired cursor, AexpError when `.aexp/` cannot be
    written (a new cursor cannot be saved).
    """
    root = os.fspath(root)
    meta, table = load_cursor(root, since)
    if stale_after is None:
        from aexp.settings import load_settings

        stale_after = load_settings(root).stale_after
    clock = start_poll(root)
    unwritable = AexpError(f"cannot write {os.path.join(root, '.aexp')}: no cursor can be kept.")
    if clock is None:
        raise unwritable
    workspace = os.path.join(root, "workspace")
    threshold = meta["clock_ns"] - meta["margin_ns"]
    removed: list[str] = []
    if (stat_ns(workspace) or 0) < threshold:  # no job added or removed: the same ids
        names = table.ids
        candidates = _changed_dirs(workspace, names, threshold)
    else:
        try:
            names = sorted(n for n in os.listdir(workspace) if is_job_id(n))
        except FileNotFoundError:
            names = []
        present = set(names)
        removed = [job_id for job_id in table.ids if job_id not in present]
        candidates = _changed_dirs(workspace, names, threshold)
        candidates |= {job_id for job_id in names if table.key(job_id) is None}
    watch: dict[str, Any] = dict(meta.get("watch") or {})
    candidates |= _looked_again(workspace, watch, threshold, stale_after, candidates)
    changes = []
    for job_id in sorted(candidates):
        seen = job_seen(workspace, job_id, stale_after)
        old = table.key(job_id)
        kind = kind_of(old, seen)
        if kind is not None:
            was = JOB_STATES[old[0]] if old else None
            changes.append({"job_id": job_id, "change": kind, "was": was, "job": seen.entry})
        table.put(job_id, seen.key)
        watch.pop(job_id, None)
        if seen.probe is not None:
            watch[job_id] = seen.probe
    for job_id in removed:
        was = JOB_STATES[table.key(job_id)[0]]
        changes.append({"job_id": job_id, "change": "removed", "was": was, "job": None})
        table.drop(job_id)
        watch.pop(job_id, None)
    cursor = save_cursor(root, clock, table, watch)
    if cursor is None:
        raise unwritable
    counts: dict[str, int] = {}
    for change in changes:
        counts[change["change"]] = counts.get(change["change"], 0) + 1
    return document(
        CHANGES,
        project=root,
        at=now_iso(),
        since=since,
        cursor=cursor,
        stale_after=stale_after,
        total=len(table.ids),
        read=len(candidates),
        counts=counts,
        changes=changes if limit is None else changes[: max(limit, 0)],
        omitted=0 if limit is None else max(len(changes) - max(limit, 0), 0),
    )


__all__ = ["CHANGES", "CursorError", "changes_document", "kind_of"]
