"""Child processes of the sync (`wandb sync`, the account query): their environment, killing
their whole tree, and masking the API key in what they print."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

#: Retry caps handed to W&B's child processes unless the environment sets them: a failing server
#: then ends in an error after about a minute per request instead of minutes of retries.
RETRY_DEFAULTS = {
    "WANDB__GRAPHQL_RETRY_MAX": "5",
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "30",
    "WANDB__FILE_STREAM_RETRY_MAX": "5",
    "WANDB__FILE_STREAM_RETRY_WAIT_MAX_SECONDS": "30",
    "WANDB__FILE_TRANSFER_RETRY_MAX": "5",
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": "30",
}
# How long a killed process tree may take to disappear before we go on without waiting.
KILL_WAIT_SECONDS = 10.0
POLL_KILLED_SECONDS = 0.02


def tmp_root() -> str | None:
    """The current $TMPDIR (tempfile caches the first one it saw for the whole process)."""
    tmp = os.environ.get("TMPDIR")
    return tmp if tmp and os.path.isdir(tmp) else None


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`, its process group and every process below it; reap `proc` and wait (at
    most KILL_WAIT_SECONDS each) until the others have ended.

    The tree is listed before anything is killed: wandb-core runs in a session of its own, so
    killing our child's process group misses it, and once its parent is dead it is re-parented
    and no longer found below `proc`. The process groups of the listed processes are killed too
    (not ours, nor `proc`'s, which is killed first), which catches what they start between the
    listing and the kill.
    """
    # Imported here: killing is rare, and psutil's import (~30 ms) would add about as much as
    # aexp's own imports to every idle `aexp sync-offline` pass.
    import psutil

    try:
        below = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:  # gone already (or not ours to see): its group is all we can reach
        below = []
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    own = os.getpgrp()
    for child in below:
        with contextlib.suppress(OSError):
            group = os.getpgid(child.pid)
            if group not in (own, proc.pid):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):  # psutil checks it is still the same process
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_WAIT_SECONDS)
    # Dead before we judge: a dying wandb-core must not write a marker after the judgement.
    # Dead, not reaped: they are no children of ours, and their new parent (init, or a
    # container's first process) reaps them when it pleases; wait_procs alone would wait for that.
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while below and time.monotonic() < deadline:
        _, alive = psutil.wait_procs(below, timeout=POLL_KILLED_SECONDS)
        below = [p for p in alive if _running(p)]


def _running(process: psutil.Process) -> bool:
    """Whether a psutil.Process still runs (a zombie has ended: only its exit status is left)."""
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone
        return False


def mask(text: str) -> str:
    """`text` with the API key of the environment (if any, of 8+ characters) replaced by ***."""
    key = os.environ.get("WANDB_API_KEY", "").strip()
    return text.replace(key, "***") if key and len(key) >= 8 else text


def child_env(wandb_dir: Path) -> dict[str, str]:
    """The environment of a `wandb sync` process whose private WANDB_DIR is `wandb_dir`."""
    env = dict(os.environ)
    for name, value in RETRY_DEFAULTS.items():
        env.setdefault(name, value)
    env["WANDB_DIR"] = str(wandb_dir)  # a private log directory for this process only
    env["WANDB_SILENT"] = "false"  # W&B's per-run lines (URL, errors) are captured, not shown
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
