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

One change leaves a job's directory as it was: a running attempt that dies writes nothing.
For each job running at the poll, the cursor keeps its heartbeat and where it runs (its
`probe`), and the next poll judges them again (`is_stale`) without reading anything.

What the client last saw of every job is kept in a table: the job ids, then 6 bytes per job
of the key its change is judged by (aexp.reports.status.Seen), so a job read again whose state
did not change (a heartbeat, a checkpoint) is not reported. While the workspace's own mtime
has not moved, no job was added or removed, and the table's ids stand in for a listing of it.
A cursor is `.aexp/cursors/<name>.json` plus its table, shared by content; both are removed an
hour after their last use (CURSOR_TTL_S).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aexp.agent.history import state_dir
from aexp.contract import document
from aexp.errors import AexpError
from aexp.jobdoc import now_iso
from aexp.jobs import is_job_id
from aexp.mounts import kernel_local
from aexp.reports.status import JOB_STATES, Seen, job_seen, still_alive
from aexp.schema import FAILED, FINISHED, RUNNING

CHANGES = "aexp.status.changes/1"
CURSOR_TTL_S = 3600.0
MARGIN_S = 60.0  # NFS's longest default attribute cache (acdirmax)
KEY = 6  # bytes of a job's key (aexp.reports.status.Seen.key)
_CURSOR = "c1-"


class CursorError(AexpError):
    """A cursor that names no saved cursor (mistyped, or expired)."""


@dataclass
class Table:
    """What a client last saw: the job ids (sorted) and their keys (KEY bytes each, in order)."""

    ids: list[str] = field(default_factory=list)
    keys: bytearray = field(default_factory=bytearray)

    @classmethod
    def of(cls, seen: Mapping[str, Seen]) -> Table:
        ids = sorted(seen)
        return cls(ids, bytearray(b"".join(seen[job_id].key for job_id in ids)))

    @classmethod
    def parse(cls, data: bytes) -> Table:
        ids, _, keys = data.partition(b"\0")
        return cls(ids.decode("ascii").split("\n") if ids else [], bytearray(keys))

    def dump(self) -> bytes:
        return "\n".join(self.ids).encode("ascii") + b"\0" + bytes(self.keys)

    def _index(self, job_id: str) -> int:
        at = bisect.bisect_left(self.ids, job_id)
        return at if at < len(self.ids) and self.ids[at] == job_id else -1

    def key(self, job_id: str) -> bytes | None:
        at = self._index(job_id)
        return None if at < 0 else bytes(self.keys[at * KEY : (at + 1) * KEY])

    def put(self, job_id: str, key: bytes) -> None:
        at = self._index(job_id)
        if at < 0:
            at = bisect.bisect_left(self.ids, job_id)
            self.ids.insert(at, job_id)
            self.keys[at * KEY : at * KEY] = key
        else:
            self.keys[at * KEY : (at + 1) * KEY] = key

    def drop(self, job_id: str) -> None:
        at = self._index(job_id)
        if at >= 0:
            del self.ids[at]
            del self.keys[at * KEY : (at + 1) * KEY]


def _dir(root: str) -> str:
    return state_dir(root, "cursors")


def start_poll(root: str | os.PathLike) -> int | None:
    """Touch the project's cursor clock and return its mtime (ns): the moment this poll starts,
    on the file system's clock. None when `.aexp/` cannot be written (no cursor then)."""
    try:
        path = os.path.join(_dir(os.fspath(root)), "clock")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        os.utime(path, None)
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def save_cursor(
    root: str | os.PathLike,
    clock: int,
    table: Table,
    watch: Mapping[str, Any],
) -> str | None:
    """Save a cursor at `clock` for the jobs as `table` has them and the running ones' probes
    (`watch`, {job id: probe}); returns its name, or None when `.aexp/` cannot be written."""
    root = os.fspath(root)
    workspace = os.path.join(root, "workspace")
    margin = 0.0 if not os.path.isdir(workspace) or kernel_local(workspace) else MARGIN_S
    name = _CURSOR + secrets.token_hex(8)
    data = table.dump()
    table_name = f"{zlib.crc32(data):08x}{len(data):x}.keys"
    meta = {
        "v": 1,
        "clock_ns": clock,
        "margin_ns": int(margin * 1e9),
        "table": table_name,
        "watch": dict(watch),
    }
    try:
        where = _dir(root)
        table_path = os.path.join(where, table_name)
        if os.path.exists(table_path):
            os.utime(table_path, None)  # kept as long as its newest cursor
        else:
            _write(table_path, data)
        _write(os.path.join(where, name + ".json"), json.dumps(meta).encode("utf-8"))
        _expire(where)
    except OSError:
        return None
    return name


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _expire(where: str) -> None:
    """Remove cursors and tables unused for CURSOR_TTL_S; looked at once a minute at most."""
    now = time.time()
    mark = os.path.join(where, "expired")
    if now - (_stat_ns(mark) or 0) / 1e9 < 60:
        return
    os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    os.utime(mark, None)
    with os.scandir(where) as entries:
        for entry in entries:
            if entry.name.endswith((".json", ".keys")):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < now - CURSOR_TTL_S:
                        os.unlink(entry.path)


def _load(root: str, cursor: str) -> tuple[dict[str, Any], Table]:
    expired = CursorError(
        f"cursor {cursor!r} is unknown or has expired (cursors last an hour unused); take a "
        "full status for a new one: aexp status --json."
    )
    if not (cursor.startswith(_CURSOR) and len(cursor) == 19 and is_hex(cursor[3:])):
        raise expired
    where = os.path.join(root, ".aexp", "cursors")
    try:
        path = os.path.join(where, cursor + ".json")
        with open(path, "rb") as fh:
            meta = json.loads(fh.read())
        with open(os.path.join(where, meta["table"]), "rb") as fh:
            table = Table.parse(fh.read())
        os.utime(path, None)  # in use: kept another hour
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise expired from None
    return meta, table


def is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def kind_of(old: bytes | None, new: Seen) -> str | None:
    """How a job changed, from its last key (None: the client never saw it) to how it is now;
    None when nothing the status reports changed. See docs/json.md, `aexp.status.changes/1`."""
    if old is None:
        return "created"
    if old == new.key:
        return None
    state, was = new.entry["state"], JOB_STATES[old[0]]
    if state == RUNNING:
        return "stale" if new.entry["stale"] else "running"
    if state in (FINISHED, FAILED) and was == state:
        return "synced" if new.key[1] & 2 and not old[1] & 2 else "updated"
    return state  # finished, failed, preempted, completed, bound, unbound, corrupt


def _stat_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


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
        mtimes = [_stat_ns(os.path.join(workspace, name)) or 0 for name in names]
    finally:
        os.close(fd)
    return {n for n, m in zip(names, mtimes, strict=True) if m >= threshold}


def changes_document(
    root: str | os.PathLike, since: str, *, stale_after: float | None = None
) -> dict[str, Any]:
    """What changed in the project at `root` since cursor `since` (`aexp.status.changes/1`):
    one entry per job whose state, staleness, run, attempts, error or sync changed, with its
    status entry now (null for a removed job), and a new cursor.

    Raises CursorError for an unknown or expired cursor, AexpError when `.aexp/` cannot be
    written (a new cursor cannot be saved).
    """
    root = os.fspath(root)
    meta, table = _load(root, since)
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
    if (_stat_ns(workspace) or 0) < threshold:  # no job added or removed: the same ids
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
    candidates |= {job_id for job_id, probe in watch.items() if not still_alive(probe, stale_after)}
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
        changes=changes,
    )


__all__ = [
    "CHANGES",
    "CURSOR_TTL_S",
    "MARGIN_S",
    "CursorError",
    "Table",
    "changes_document",
    "kind_of",
    "save_cursor",
    "start_poll",
]
