"""Status cursors: what a client last saw of a project, kept so that the next poll reads only
what changed (aexp.reports.changes tells the idea).

A cursor is `.aexp/cursors/<name>.json`, which holds the moment of the poll on the file system's
clock (`start_poll`), the look-back margin, the running jobs' probes, and the name of its table:
the job ids, then KEY bytes per job of the key its change is judged by
(aexp.reports.status.Seen.key). Tables are shared by content; both are removed an hour after
their last use (CURSOR_TTL_S).
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
from aexp.errors import AexpError
from aexp.mounts import kernel_local

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
    def of(cls, seen: Mapping[str, Any]) -> Table:
        """The table of jobs as looked at: {job id: its Seen (anything with a `key`)}."""
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
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:  # a full disk: no temporary file is left behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _expire(where: str) -> None:
    """Remove cursors and tables unused for CURSOR_TTL_S; looked at once a minute at most."""
    now = time.time()
    mark = os.path.join(where, "expired")
    if now - (stat_ns(mark) or 0) / 1e9 < 60:
        return
    os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    os.utime(mark, None)
    with os.scandir(where) as entries:
        for entry in entries:
            if entry.name.endswith((".json", ".keys")):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < now - CURSOR_TTL_S:
                        os.unlink(entry.path)


def load_cursor(root: str, cursor: str) -> tuple[dict[str, Any], Table]:
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


def stat_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


__all__ = [
    "CURSOR_TTL_S",
    "KEY",
    "MARGIN_S",
    "CursorError",
    "Table",
    "is_hex",
    "load_cursor",
    "save_cursor",
    "start_poll",
    "stat_ns",
]
