"""Safe reads and writes of the job document (`<job>/signac_job_document.json`).

signac writes the whole document on every update (read, modify, atomic replace) without an
inter-process lock, so two processes updating different keys lose each other's writes. Every
aexp write goes through `update_doc` under a per-job lock (`job_lock`); reads go through
`read_doc`, which parses the file once per change (cached by inode, mtime and size), so the
workflow's conditions cost one parse per job however many conditions read it; `peek_doc` is the
same read without keeping the parse (for one pass over many jobs, like `status`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from aexp.errors import BindingError

LOCK_FILE = ".aexp.lock"
LOCK_TIMEOUT_S = 120.0

# The last parse of each document and the (inode, mtime, size) it was parsed at, by path. Two
# dicts rather than one of (key, doc) pairs: fewer objects for the garbage collector to walk.
_cache_keys: dict[str, tuple[int, int, int]] = {}
_cache_docs: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class JobDir:
    """A signac job known by its id and directory only: all that this module needs of a job.

    Lets a process that only reads and writes job documents (`aexp sync-offline`) work without
    importing signac; a `signac.job.Job` serves wherever a JobDir does.
    """

    id: str
    path: str
    FN_DOCUMENT: ClassVar[str] = "signac_job_document.json"  # signac.job.Job.FN_DOCUMENT


def now_iso() -> str:
    """The current time as ISO-8601 UTC (the format of every timestamp aexp writes)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def age_seconds(timestamp: str | None) -> float | None:
    """Seconds since an ISO-8601 timestamp written by `now_iso`, or None if absent or unreadable."""
    if not timestamp:
        return None
    try:
        then = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def _doc_path(job: Any) -> str:
    # signac joins job paths with os.sep itself (job.path never ends in a separator); a plain
    # join is several times cheaper than os.path.join, and conditions call this constantly.
    return f"{job.path}{os.sep}{job.FN_DOCUMENT}"


def read_doc(job: Any, *, fresh: bool = False) -> dict[str, Any]:
    """The job document as a plain dict ({} if the job has none yet).

    The returned dict is shared with the cache: treat it as read-only. `fresh` bypasses the
    cache (writers use it: a file replaced twice within one timestamp tick can look unchanged).
    Raises BindingError if the file is not valid JSON.
    """
    return _read_doc(job, _doc_path(job), fresh)


def peek_doc(job: Any) -> dict[str, Any]:
    """`read_doc`, but a document parsed now is not kept in the cache.

    For one pass over many jobs (`status`): the pass does not hold every job's parsed document
    (about 4 KB each) until it ends. A cached parse that is still current is returned as is.
    """
    return _read_doc(job, _doc_path(job), False, keep=False)


def _read_doc(job: Any, path: str, fresh: bool, *, keep: bool = True) -> dict[str, Any]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    if not fresh and _cache_keys.get(path) == key:
        return _cache_docs[path]
    try:
        # One unbuffered read and one decode: the same result as json.load on a UTF-8 text
        # file, at about half the cost (this runs once per job in every `status`).
        with open(path, "rb", buffering=0) as fh:
            doc = json.loads(fh.read().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BindingError(f"job {job.id}: its document {path} is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise BindingError(f"job {job.id}: its document {path} is not a JSON object.")
    if keep:
        _cache_keys[path] = key
        _cache_docs[path] = doc
    return doc


# Job locks this thread holds, by lock path, and how deeply: re-entering is free.
_held = threading.local()
# flock failing with one of these means the file system has no flock (Lustre mounted without
# `-o flock`, some FUSE mounts), not that the lock is taken.
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}


@contextmanager
def job_lock(job: Any) -> Iterator[None]:
    """Hold the job's inter-process lock (`flock` on `<job>/.aexp.lock`) for the block.

    Excludes other processes and other threads of this one; re-entrant within a thread. The OS
    drops the lock when its holder dies, so a killed process never leaves a job locked. On a
    file system without flock, filelock's soft lock `<job>/.aexp.lock.filelock` takes its place.
    Raises BindingError after LOCK_TIMEOUT_S seconds of waiting.
    """
    # A plain flock rather than filelock.FileLock: filelock 4 spends ~120 us of Python per
    # acquire and release, against ~4 us for the system calls, and every job takes the lock
    # four or five times per attempt (docs/benchmarks.md, benchmark 7).
    path = f"{job.path}{os.sep}{LOCK_FILE}"
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    if depth.get(path):
        depth[path] += 1
        try:
            yield
        finally:
            depth[path] -= 1
        return
    with _locked(path, job):
        depth[path] = 1
        try:
            yield
        finally:
            del depth[path]


@contextmanager
def _locked(path: str, job: Any) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        has_flock = _acquire(fd, job)
    except BaseException:
        os.close(fd)
        raise
    if not has_flock:
        os.close(fd)
        with _filelock(f"{path}.filelock", job):
            yield
        return
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(fd: int, job: Any) -> bool:
    """flock `fd`, waiting up to LOCK_TIMEOUT_S; False if the file system has no flock."""
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise _timeout(job) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        except OSError as exc:
            if exc.errno in _NO_FLOCK:
                return False
            raise


@contextmanager
def _filelock(path: str, job: Any) -> Iterator[None]:
    # filelock's soft lock works where flock is missing: a lock file created exclusively, with
    # its owner recorded so that a lock left by a killed process is taken over.
    from filelock import SoftFileLock, Timeout

    lock = SoftFileLock(path, timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise _timeout(job) from None
    try:
        yield
    finally:
        lock.release()


def _timeout(job: Any) -> BindingError:
    return BindingError(
        f"job {job.id}: another process has held its lock {job.path}{os.sep}{LOCK_FILE} for "
        f"{LOCK_TIMEOUT_S:.0f} s; is it hung?"
    )


def update_doc(
    job: Any, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> dict[str, Any]:
    """Apply `change` to a fresh copy of the document under the job lock and store the result.

    `change` receives a deep copy of the current document and returns the top-level keys to
    store (or None to store nothing). Returns the document as stored. Keys must be valid signac
    document keys (strings without dots).
    """
    with job_lock(job):
        current = json.loads(json.dumps(read_doc(job, fresh=True)))
        updates = change(current)
        if updates:
            current.update(updates)
            path = _doc_path(job)
            try:
                text = json.dumps(current)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"job {job.id}: cannot store {sorted(updates)}: {exc}") from None
            _write_atomically(path, text)
            # Remember what was written, so this process reads its own writes even where the
            # file's (inode, mtime, size) cannot tell two versions apart: inodes are reused at
            # once and many cluster file systems keep mtime to the second.
            st = os.stat(path)
            _cache_keys[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
            _cache_docs[path] = json.loads(text)
        return current


def _write_atomically(path: str, text: str) -> None:
    # The same atomic replace signac performs, without its per-key validation: one write per
    # update, and a reader (signac's job.doc included) never sees a torn file. The text is
    # serialised before the temporary file is opened, so a failure leaves nothing behind.
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
