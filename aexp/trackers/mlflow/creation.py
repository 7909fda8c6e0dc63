"""A sqlite MLflow store is created (and migrated) once, under a lock every aexp process takes.

MLflow creates a sqlite store's tables, and upgrades an older store's schema with alembic, the first
time a client uses it. Two processes doing that at once (two login nodes syncing, two `project.py
run`) collide: measured, 4 to 8 of 8 uploads failed in each of 4 trials, and once the store was
left broken for good (`table _alembic_tmp_params already exists`: a half-done migration step).
So the first use of a sqlite store in a process happens under an exclusive lock on a file beside
the database (`<database>.aexp-lock`, `flock`, which reaches other nodes on Linux NFS clients):
the first process creates or migrates it, the others wait and then find it ready. Later uses
need no lock (MLflow's own sqlite locking serialises writes).

A store that cannot be opened gets one sentence naming the repair (`store_problem`): a migration
left half done, a schema older or newer than this MLflow, a file that is not a database, a store
that cannot be written.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator
from pathlib import Path

from aexp.errors import TrackerInitError
from aexp.trackers.mlflow.uri import sqlite_path

LOCK_SUFFIX = ".aexp-lock"
# How long a process waits for another one to create or migrate the store (MLflow's migrations
# of a new store take ~10 s on a loaded machine).
LOCK_TIMEOUT_SECONDS = 300.0


@contextlib.contextmanager
def creation_lock(uri: str, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the store's creation lock (sqlite URIs; other stores: no lock). TrackerInitError
    when another process holds it longer than `timeout` seconds or it cannot be taken."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    import filelock

    lock = filelock.FileLock(str(path) + LOCK_SUFFIX, timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise TrackerInitError(
            f"another process has been creating or upgrading the MLflow store {path} for over "
            f"{timeout:g} s (its lock {path}{LOCK_SUFFIX} is held); try again once it is done."
        ) from None
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise TrackerInitError(
                f"the MLflow store {path} cannot be written ({exc.strerror}: read-only); make "
                "it and its directory writable, or point [mlflow] tracking_uri (or "
                "MLFLOW_TRACKING_URI) at another store."
            ) from None
        raise TrackerInitError(
            f"cannot lock the MLflow store {path} for its creation ({exc.strerror or exc}): "
            f"its directory {path.parent} must exist and be writable."
        ) from None
    try:
        yield
    finally:
        lock.release()


_ALEMBIC_TMP = re.compile(r"table (_alembic_tmp_\w+) already exists")


def store_problem(uri: str, exc: BaseException) -> str | None:
    """One sentence naming the repair for a store MLflow could not open, or None when the error
    is not one of a broken store (a server down, a refused input)."""
    text = " ".join(str(exc).split())
    path = sqlite_path(uri)
    where = str(path) if path is not None else uri
    tmp = _ALEMBIC_TMP.search(text)
    if tmp:
        repair = (
            f"sqlite3 {where} 'DROP TABLE {tmp.group(1)}' && mlflow db upgrade sqlite:///{where}"
            if path is not None
            else f"drop the table {tmp.group(1)}, then: mlflow db upgrade {uri}"
        )
        return (
            f"the MLflow store {where} was left half-upgraded by an interrupted schema "
            f"migration (table {tmp.group(1)} remains); back it up, then repair it: {repair}"
        )
    if "out-of-date database schema" in text or "mlflow db upgrade" in text:
        return (
            f"the MLflow store {where} has an older schema than this MLflow; back it up, then "
            f"run: mlflow db upgrade {'sqlite:///' + where if path is not None else uri}."
        )
    if "Can't locate revision" in text or "can't locate revision" in text.lower():
        return (
            f"the MLflow store {where} was written by a newer MLflow than this one; use that "
            "MLflow, or point [mlflow] tracking_uri (or MLFLOW_TRACKING_URI) at another store."
        )
    if "file is not a database" in text or "database disk image is malformed" in text:
        return (
            f"{where} is not a usable sqlite database ({_reason(text)}); move it away to start "
            "a new MLflow store there, or point [mlflow] tracking_uri at the right file."
        )
    if "readonly database" in text or "read-only" in text.lower():
        return (
            f"the MLflow store {where} cannot be written (read-only); make it and its directory "
            "writable, or point [mlflow] tracking_uri (or MLFLOW_TRACKING_URI) at another store."
        )
    if "unable to open database file" in text and path is not None:
        return (
            f"the MLflow store {where} cannot be opened; its directory {Path(where).parent} must "
            "exist and be writable."
        )
    return None


def _reason(text: str) -> str:
    match = re.search(r"\) ([^[(]+)", text)
    return (match.group(1) if match else text).strip()[:120]


__all__ = ["LOCK_SUFFIX", "creation_lock", "store_problem"]
