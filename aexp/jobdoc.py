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
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from aexp.errors import BindingError, JobBusyError
from aexp.mounts import kernel_local

LOCK_FILE = ".aexp.lock"
CLAIM_FILE = ".aexp.claim"
_HOST = os.uname().nodename  # socket.gethostname(), without importing socket
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
        # One read of the size the stat gave and one decode: the same result as json.load on a
        # UTF-8 text file, at about a third of the system calls (this runs once per job in
        # every `status`).
        doc = json.loads(_read_bytes(path, st.st_size).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BindingError(f"job {job.id}: its document {path} is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise BindingError(f"job {job.id}: its document {path} is not a JSON object.")
    if keep:
        _cache_keys[path] = key
        _cache_docs[path] = doc
    return doc


def _read_bytes(path: str, size: int) -> bytes:
    """The file's bytes, read with one `read` when it still has the `size` a stat just gave."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)  # one byte more: a file that grew since is read on
        if len(data) > size:
            chunks = [data]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    finally:
        os.close(fd)


# Locks this thread holds, by lock path, and how deeply: re-entering is free.
_held = threading.local()
# flock failing with one of these means the file system has no flock (Lustre mounted without
# `-o flock`, some FUSE mounts), not that the lock is taken.
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}


@contextmanager
def job_lock(job: Any) -> Iterator[None]:
    """Hold the job's document lock for the block: a `flock` on the job's directory where its
    file system is served by this kernel alone (`aexp.mounts.kernel_local`), else on
    `<job>/.aexp.lock`; on a file system without flock, filelock's soft lock
    `<job>/.aexp.lock.filelock`.

    Excludes other processes and other threads of this one; re-entrant within a thread. The OS
    drops the lock when its holder dies, so a killed process never leaves a job locked.
    Raises BindingError after LOCK_TIMEOUT_S seconds of waiting.
    """
    # A plain flock rather than filelock.FileLock: filelock 4 spends ~120 us of Python per
    # acquire and release, against ~4 us for the system calls. The directory where it is safe:
    # it spares creating a file per job, among the dearest things a sweep of short jobs does
    # (docs/benchmarks.md). Not on NFS and other shared file systems: Linux has no NFS flock
    # for directories and grants one local to the node, which excludes nothing elsewhere.
    path = f"{job.path}{os.sep}{LOCK_FILE}"
    local = kernel_local(os.path.dirname(job.path))
    with _held_lock(path, job, LOCK_TIMEOUT_S, directory=job.path if local else None):
        yield


@contextmanager
def job_claim(job: Any) -> Iterator[int | None]:
    """Hold the job's operation claim (`<job>/.aexp.claim`) for the block, or raise JobBusyError.

    One process at a time works on a job (executes, finishes or uploads its run): whatever any
    number of concurrent `run` or sync processes do, each attempt is opened and closed once.
    Never waits: a claim held elsewhere raises JobBusyError naming the holder (pid and host).
    Re-entrant within a thread. Yields the claim's file descriptor (None on a file system
    without flock): a child process that inherits it keeps the claim until it exits too.
    """
    path = f"{job.path}{os.sep}{CLAIM_FILE}"
    with _held_lock(path, job, 0.0, busy=_busy) as fd:
        if fd is not None and _held.__dict__["depth"][path] == 1:
            _write_holder(fd)
        yield fd


@contextmanager
def _held_lock(
    path: str,
    job: Any,
    timeout: float,
    busy: Callable[..., Exception] | None = None,
    directory: str | None = None,
) -> Iterator[int | None]:
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    fds: dict[str, int | None] = _held.__dict__.setdefault("fds", {})
    if depth.get(path):
        depth[path] += 1
        try:
            yield fds.get(path)
        finally:
            depth[path] -= 1
        return
    with _locked(path, job, timeout, busy or _timeout, directory) as fd:
        depth[path], fds[path] = 1, fd
        try:
            yield fd
        finally:
            del depth[path]
            fds.pop(path, None)


@contextmanager
def _locked(
    path: str,
    job: Any,
    timeout: float,
    busy: Callable[..., Exception],
    directory: str | None = None,
) -> Iterator[int | None]:
    if directory is not None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            has_flock = _acquire(fd, job, directory, timeout, busy)
        except BaseException:
            os.close(fd)
            raise
        if has_flock:
            try:
                with _existing_lock_file(path, job, timeout, busy):
                    yield fd
            finally:
                os.close(fd)
            return
        os.close(fd)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        has_flock = _acquire(fd, job, path, timeout, busy)
    except BaseException:
        os.close(fd)
        raise
    if not has_flock:
        os.close(fd)
        with _filelock(f"{path}.filelock", job, path, timeout, busy):
            yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock (once no child holds it too)


@contextmanager
def _existing_lock_file(
    path: str, job: Any, timeout: float, busy: Callable[..., Exception]
) -> Iterator[None]:
    # Earlier aexp versions (and every process where the directory is not locked) lock
    # `.aexp.lock` alone: where a job has one, such a process may be working on it (a SLURM job
    # started before an upgrade), so it is held too. Always after the directory: no cycle.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield
        return
    try:
        _acquire(fd, job, path, timeout, busy)
        yield
    finally:
        os.close(fd)


def _acquire(fd: int, job: Any, path: str, timeout: float, busy: Callable[..., Exception]) -> bool:
    """flock `fd`, waiting up to `timeout` seconds; False if the file system has no flock."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise busy(job, path, timeout) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        except OSError as exc:
            if exc.errno in _NO_FLOCK:
                return False
            raise


@contextmanager
def _filelock(
    lock_path: str, job: Any, path: str, timeout: float, busy: Callable[..., Exception]
) -> Iterator[None]:
    # filelock's soft lock works where flock is missing: a lock file created exclusively, with
    # its owner recorded so that a lock left by a killed process is taken over.
    from filelock import SoftFileLock, Timeout

    lock = SoftFileLock(lock_path, timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise busy(job, path, timeout) from None
    try:
        yield
    finally:
        lock.release()


def _timeout(job: Any, path: str, timeout: float) -> BindingError:
    return BindingError(
        f"job {job.id}: another process has held its lock {path} for {timeout:.0f} s; is it hung?"
    )


# The claim file's holder line is padded to this many bytes: one `pwrite` then covers whatever
# an earlier holder wrote, without a truncate (which costs the file system a journal entry).
_HOLDER_BYTES = 64


def _write_holder(fd: int) -> None:
    # Who holds the claim, for the message another process prints (best effort).
    with suppress(OSError):
        text = f"{os.getpid()} {_HOST}".ljust(_HOLDER_BYTES - 1).encode() + b"\n"
        os.pwrite(fd, text, 0)
        if len(text) > _HOLDER_BYTES:  # a very long host name
            os.ftruncate(fd, len(text))


def _busy(job: Any, path: str, timeout: float) -> JobBusyError:
    holder = ""
    with suppress(OSError, ValueError), open(path, encoding="utf-8") as fh:
        pid, host = fh.read().split()[:2]
        holder = f" (pid {pid} on {host})"
    return JobBusyError(f"job {job.id} is being worked on by another process{holder}.")


def update_doc(
    job: Any, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> dict[str, Any]:
    """Apply `change` to a fresh copy of the document under the job lock and store the result.

    `change` receives a private copy of the current document (parsed from the file under the
    lock, so another process's last write is seen) and returns the top-level keys to store (or
    None to store nothing). Returns the document as stored. Keys must be valid signac document
    keys (strings without dots).
    """
    with job_lock(job):
        path = _doc_path(job)
        # Parsed afresh and not cached: the dict is this update's own to change, with no copy.
        current = _read_doc(job, path, True, keep=False)
        updates = change(current)
        if updates:
            current.update(updates)
            try:
                text = _dumps(current)
            except ValueError:  # NaN or infinity somewhere: the document stays strict JSON
                current = strict_json(current)
                text = _dumps(current)
            except TypeError as exc:
                raise TypeError(f"job {job.id}: cannot store {sorted(updates)}: {exc}") from None
            _write_atomically(path, text)
            # Remember what was written, so this process reads its own writes even where the
            # file's (inode, mtime, size) cannot tell two versions apart: inodes are reused at
            # once and many cluster file systems keep mtime to the second. The cache gets its
            # own parse: `current` goes back to the caller, who may change it.
            st = os.stat(path)
            _cache_keys[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
            _cache_docs[path] = json.loads(text)
        return current


# Strict JSON: jq, browsers and other strict readers reject NaN and Infinity literals.
_dumps = json.JSONEncoder(allow_nan=False).encode


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by "NaN", "Infinity" or "-Infinity".

    How aexp keeps job documents strict JSON (the run journal does the same for metrics).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def _write_atomically(path: str, text: str) -> None:
    # The same atomic replace signac performs, without its per-key validation: one write per
    # update, and a reader (signac's job.doc included) never sees a torn file. The text is
    # serialised before the temporary file is opened, so a failure leaves nothing behind.
    # Plain descriptors: no text layer, no buffer, no isatty probe of a new file.
    tmp = f"{path}.{os.getpid()}.tmp"
    data = text.encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:  # a regular file takes it whole; a short write continues
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
