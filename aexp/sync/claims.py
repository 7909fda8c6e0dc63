"""Claims: one process at a time uploads a job's run (aexp.joblock.job_claim).

A sync takes the claim of every job of a batch before it mends, completes or uploads anything of
it, and hands the claims' file descriptors to the `wandb sync` process it starts (`pass_fds`): a
`wandb sync` left running after a `kill -9` of the sync holds them until it exits, so a second
sync (another terminal, or the same command again after the kill) never uploads a run that is
still being uploaded. It skips such a job with one line naming the holder; once the claim is
free, it finds W&B's markers of what was uploaded meanwhile and records them without uploading
again (wandb_prepare.py).

Claims cost one file descriptor each in this process and in the `wandb sync` child, so a batch
holds at most `batch_size()` jobs: below the soft `ulimit -n`, whatever the size of the sweep.
"""

from __future__ import annotations

import contextlib
import os
import resource
from contextlib import ExitStack

from aexp.errors import JobBusyError
from aexp.jobdoc import JobDir
from aexp.joblock import CLAIM_FILE, job_claim

_HOST = os.uname().nodename
# Paths per `wandb sync` process: keeps the command line far below ARG_MAX.
MAX_RUNS_PER_BATCH = 400
# File descriptors left for everything else a process opens (W&B's logs, pipes, documents).
FD_RESERVE = 64


def batch_size(limit: int = MAX_RUNS_PER_BATCH) -> int:
    """How many jobs one batch may claim at once: at most `limit`, and at most half of what the
    soft `ulimit -n` leaves after FD_RESERVE (each claim is open here and in `wandb sync`)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(1, min(limit, (int(soft) - FD_RESERVE) // 2))


def holder(job: JobDir) -> tuple[str, str] | None:
    """(pid, host) written by the process that holds the job's claim, if it says."""
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(job.path, CLAIM_FILE), encoding="utf-8") as fh:
            pid, host = fh.read().split()
        return pid, host
    return None


def take(stack: ExitStack, job: JobDir) -> int | None:
    """Take `job`'s claim until `stack` closes; returns its file descriptor (None on a file
    system without flock). Raises JobBusyError when another process holds it."""
    return stack.enter_context(job_claim(job))


def busy_reason(job: JobDir, exc: JobBusyError, *, uploading: bool) -> str:
    """One line for a job whose claim another process holds."""
    who = holder(job)
    if who is None:
        return str(exc)
    verb = "being uploaded" if uploading else "being worked on"
    return f"{verb} by pid {who[0]} on host {who[1]}"


def hand_over(fds: list[int], pid: int) -> None:
    """Name `pid` (the `wandb sync` process that inherited the claims `fds`) as their holder, so
    that a second sync names the process that really holds them, even after this one died."""
    text = f"{pid} {_HOST}\n".encode()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.pwrite(fd, text, 0)
            os.ftruncate(fd, len(text))


__all__ = ["FD_RESERVE", "MAX_RUNS_PER_BATCH", "batch_size", "busy_reason", "hand_over", "take"]
