"""Mending W&B offline fragments so that `wandb sync` can take them, losing nothing readable.

What a killed attempt or a moved project leaves, and what `wandb sync` (0.31) then does, measured
against the loopback stand-in (docs/sync.md, "Damaged fragments"):

- a log with no `run` record (a process killed before W&B wrote its first 32 KiB block: the file
  holds its 7-byte header only): `wandb sync` fails "didn't find run info" and, worse, uploads
  nothing for ANY run passed to the same process. It holds no row: it is set aside
  (`run-<id>.wandb` -> `run-<id>.wandb.empty`, so no `wandb sync` sees it) and its rows come from
  the journal;
- a torn log (ends inside a record): `wandb sync` uploads the readable rows, then fails without
  writing its synced marker, so every later try uploads them again and W&B renumbers every later
  step. It is cut back to its complete records (the original kept as `run-<id>.wandb.torn`);
- a log whose artifact was staged under another directory (the project was moved or copied since
  the run): `wandb sync` writes its marker but uploads an empty artifact. The staged paths are
  rewritten to the job's directory as it is now, before the first sync.

Every rewrite goes to a temporary name beside the log (not `*.wandb`: `wandb sync` takes every
`*.wandb` of a folder), is synced to disk, and replaces the log atomically; W&B's
`run-<id>.wandb.syncstate`, which pins the starting step of an earlier sync, goes with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aexp.wandb_offline.decode import record_class
from aexp.wandb_offline.framing import read_log, write_log

EMPTY_SUFFIX = ".empty"
TORN_SUFFIX = ".torn"
_SYNCSTATE = ".syncstate"
_REWRITING = ".rewriting"


def set_aside(log: str | os.PathLike) -> Path:
    """Rename a log that holds no run (`run-<id>.wandb.empty`) so that no `wandb sync` takes it.

    Nothing is deleted: the file is kept under its new name. Returns the new path.
    """
    log = Path(log)
    target = log.with_name(log.name + EMPTY_SUFFIX)
    os.replace(log, target)
    return target


def cut_back(log: str | os.PathLike) -> int:
    """Cut a torn log back to its complete records; the original is kept as `<log>.torn`.

    The result is what wandb itself would have written had the attempt stopped after its last
    complete record (the framing of a prefix does not change). Returns the bytes cut off (0: the
    log was not torn and is left as it is).
    """
    log = Path(log)
    contents = read_log(log)
    size = log.stat().st_size
    if not contents.torn and contents.end == size:
        return 0
    with open(log, "rb") as fh:
        prefix = fh.read(contents.end)
    keep = log.with_name(log.name + TORN_SUFFIX)
    if not keep.exists():
        os.link(log, keep)  # a second name for the original bytes, before they are replaced
    _replace(log, lambda tmp: _write_bytes(tmp, prefix))
    return size - contents.end


def rewrite_records(log: str | os.PathLike, change: Callable[[str, Any], bool]) -> int:
    """Rewrite records of a log in place: `change(kind, record)` edits a decoded record and says
    whether it did. Records it leaves alone keep their exact bytes (protobuf would reorder some
    fields when re-encoding; wandb does not mind, but unchanged bytes are the safer rule).

    Returns the number of records changed (0: the file is not touched).
    """
    log = Path(log)
    Record = record_class()
    contents = read_log(log)
    out: list[bytes] = []
    changed = 0
    for payload in contents.payloads:
        record = Record()
        record.ParseFromString(payload)
        if change(record.WhichOneof("record_type") or "", record):
            out.append(record.SerializeToString())
            changed += 1
        else:
            out.append(payload)
    if changed:
        _replace(log, lambda tmp: write_log(tmp, out))
    return changed


def relocate(log: str | os.PathLike, job_path: str | os.PathLike, job_id: str) -> int:
    """Point the staged artifact files of a log at the job's directory as it is now.

    An artifact logged offline is staged under `<job>/wandb/.data/artifacts/staging/` and the
    log records that absolute path (and the run's root directory). When the project moved, every
    recorded path that is missing on disk and lies inside a directory named `job_id` is moved
    under `job_path`. Returns the number of paths rewritten (0: nothing moved).
    """
    new_root = str(Path(job_path))
    marker = f"{os.sep}{job_id}{os.sep}"

    def moved(path: str) -> str | None:
        at = path.find(marker)
        if at < 0 or os.path.exists(path):
            return None
        old_root = path[: at + len(marker) - 1]
        if old_root == new_root:
            return None
        candidate = new_root + path[len(old_root) :]
        return candidate if os.path.exists(candidate) else None

    def change(kind: str, record: Any) -> bool:
        edited = False
        if kind == "artifact":
            for entry in record.artifact.manifest.contents:
                new = moved(entry.local_path)
                if new is not None:
                    entry.local_path, edited = new, True
        elif kind == "environment" and record.environment.root:
            root = record.environment.root
            if root.rstrip(os.sep).endswith(f"{os.sep}{job_id}") and root != new_root:
                record.environment.root, edited = new_root, True
        return edited

    return rewrite_records(log, change)


def set_start_time(log: str | os.PathLike, seconds: float) -> int:
    """Set the start time of the run record of a log (seconds since the epoch).

    `wandb sync` uploads the fragments of one run in the order of this time, and W&B renumbers
    any row whose step is behind what the server already holds: a fragment written later that
    completes an earlier one must start just after it. Returns 1, or 0 without a run record.
    """

    def change(kind: str, record: Any) -> bool:
        if kind != "run":
            return False
        whole = int(seconds)
        record.run.start_time.seconds = whole
        record.run.start_time.nanos = round((seconds - whole) * 1e9)
        return True

    return rewrite_records(log, change)


def _write_bytes(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _replace(log: Path, write: Callable[[Path], None]) -> None:
    tmp = log.with_name(log.name + _REWRITING)
    tmp.unlink(missing_ok=True)  # left by a rewrite that was killed
    try:
        write(tmp)
        os.replace(tmp, log)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.with_name(log.name + _SYNCSTATE).unlink(missing_ok=True)


__all__ = [
    "EMPTY_SUFFIX",
    "TORN_SUFFIX",
    "cut_back",
    "relocate",
    "rewrite_records",
    "set_aside",
    "set_start_time",
]
