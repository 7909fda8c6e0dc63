"""The per-job locks: `job_lock` serialises writes of the job document, `job_claim` lets one
process at a time work on a job (an attempt, a sync of its run).

Both are `flock`s, which the OS drops when their holder dies, so a killed process never leaves a
job locked. The document lock is the job's directory on file systems this kernel alone serves
(`aexp.mounts`) and `<job>/.aexp.lock` elsewhere; where a file system has no flock at all,
filelock's soft lock takes its place.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from aexp.errors import BindingError, JobBusyError
from aexp.mounts import kernel_local

LOCK_FILE = ".aexp.lock"
CLAIM_FILE = ".aexp.claim"
_HOST = os.uname().nodename  # socket.gethostname(), without importing socket
# This process's id, kept up to date across forks (flow's `run -p N` forks its workers): a
# system call less each time a lock's holder or a temporary file's name needs it.
_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def current_pid() -> int:
    """`os.getpid()`, without a system call."""
    return _pid[0]


LOCK_TIMEOUT_S = 120.0

# Locks this thread holds, by lock path, and how deeply: re-entering is free.
_held = threading.local()
# flock failing with one of these means the file system has no flock (Lustre mounted without
# `-o flock`, some FUSE mounts), not that the lock is taken.
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}


def job_lock(job: Any) -> _Lock:
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
    return _Lock(path, job, LOCK_TIMEOUT_S, _timeout, directory=job.path if local else None)


def job_claim(job: Any) -> _Lock:
    """Hold the job's operation claim (`<job>/.aexp.claim`) for the block, or raise JobBusyError.

    One process at a time works on a job (executes, finishes or uploads its run): whatever any
    number of concurrent `run` or sync processes do, each attempt is opened and closed once.
    Never waits: a claim held elsewhere raises JobBusyError naming the holder (pid and host).
    Re-entrant within a thread. Yields the claim's file descriptor (None on a file system
    without flock): a child process that inherits it keeps the claim until it exits too.
    """
    return _Lock(f"{job.path}{os.sep}{CLAIM_FILE}", job, 0.0, _busy, holder=True)


class _Lock:
    """A context manager holding one lock of a job (`job_lock`, `job_claim`): its `flock`s are
    taken on entry and released, by closing their descriptors, on exit. One object where nested
    generator-based managers would cost a frame each: it is taken twice per attempt."""

    __slots__ = (
        "busy",
        "directory",
        "holder",
        "job",
        "opened",
        "path",
        "reentered",
        "soft",
        "timeout",
    )

    def __init__(
        self,
        path: str,
        job: Any,
        timeout: float,
        busy: Callable[..., Exception],
        *,
        directory: str | None = None,
        holder: bool = False,
    ) -> None:
        self.path, self.job, self.busy = path, job, busy
        self.directory, self.holder = directory, holder
        self.timeout = timeout
        self.opened: list[int] = []  # descriptors whose closing releases the lock
        self.soft: Any = None  # filelock's soft lock, where the file system has no flock
        self.reentered = False

    def __enter__(self) -> int | None:
        depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
        fds: dict[str, int | None] = _held.__dict__.setdefault("fds", {})
        if depth.get(self.path):
            depth[self.path] += 1
            self.reentered = True
            return fds.get(self.path)
        fd = self._take()
        depth[self.path], fds[self.path] = 1, fd
        if self.holder and fd is not None:
            _write_holder(fd)
        return fd

    def __exit__(self, *exc: Any) -> None:
        if self.reentered:
            _held.__dict__["depth"][self.path] -= 1
            return
        del _held.__dict__["depth"][self.path]
        _held.__dict__["fds"].pop(self.path, None)
        for fd in reversed(self.opened):  # closing releases (once no child holds it too)
            os.close(fd)
        self.opened.clear()
        if self.soft is not None:
            self.soft.release()

    def _take(self) -> int | None:
        path, job, timeout, busy = self.path, self.job, self.timeout, self.busy
        if self.directory is not None:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                has_flock = _acquire(fd, job, self.directory, timeout, busy)
            except BaseException:
                os.close(fd)
                raise
            if has_flock:
                self.opened.append(fd)
                try:
                    self._existing_lock_file()
                except BaseException:
                    os.close(fd)
                    self.opened.clear()
                    raise
                return fd
            os.close(fd)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            has_flock = _acquire(fd, job, path, timeout, busy)
        except BaseException:
            os.close(fd)
            raise
        if not has_flock:
            os.close(fd)
            self.soft = _soft_lock(f"{path}.filelock", job, path, timeout, busy)
            return None
        self.opened.append(fd)
        return fd

    def _existing_lock_file(self) -> None:
        # Earlier aexp versions (and every process where the directory is not locked) lock
        # `.aexp.lock` alone: where a job has one, such a process may be working on it (a SLURM
        # job started before an upgrade), so it is held too. Always after the directory: no
        # cycle.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            _acquire(fd, self.job, self.path, self.timeout, self.busy)
        except BaseException:
            os.close(fd)
            raise
        self.opened.append(fd)


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


def _soft_lock(
    lock_path: str, job: Any, path: str, timeout: float, busy: Callable[..., Exception]
) -> Any:
    """filelock's soft lock on `lock_path`, acquired (release it when done): it works where
    flock is missing, a lock file created exclusively, its owner recorded so that a lock left
    by a killed process is taken over."""
    from filelock import SoftFileLock, Timeout

    lock = SoftFileLock(lock_path, timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise busy(job, path, timeout) from None
    return lock


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
        text = f"{_pid[0]} {_HOST}".ljust(_HOLDER_BYTES - 1).encode() + b"\n"
        os.pwrite(fd, text, 0)
        if len(text) > _HOLDER_BYTES:  # a very long host name
            os.ftruncate(fd, len(text))


def claim_holder(job: Any) -> str | None:
    """Who holds the job's claim now, in JobBusyError's sentence; None when nobody does.

    Looks without taking it: nothing is written, not even a claim file (a plan or a diagnosis
    changes nothing). Where the file system has no flock, nobody is said to hold it.
    """
    path = f"{job.path}{os.sep}{CLAIM_FILE}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return str(_busy(job, path, 0.0))
    except OSError:
        return None
    finally:
        os.close(fd)  # releases the shared lock at once
    return None


def _busy(job: Any, path: str, timeout: float) -> JobBusyError:
    holder = ""
    with suppress(OSError, ValueError), open(path, encoding="utf-8") as fh:
        pid, host = fh.read().split()[:2]
        holder = f" (pid {pid} on {host})"
    return JobBusyError(f"job {job.id} is being worked on by another process{holder}.")


__all__ = [
    "CLAIM_FILE",
    "LOCK_FILE",
    "LOCK_TIMEOUT_S",
    "claim_holder",
    "current_pid",
    "job_claim",
    "job_lock",
]
