"""The project's log of write actions: `<project>/.aexp/actions.jsonl`, append-only.

One JSON object per line, per action that changed the project (docs/agents.md):

    {"at": ISO-8601 UTC, "action": "create" | "launch" | "submit" | "rerun" | "rearm" |
     "remove" | "sync", "actor": {...} (aexp.agent.actor), "jobs": [job ids],
     "cost": {"cpu_hours": float, "gpu_hours": float} for launches, ...details}

It is where a removed job's removal is recorded (its document went with it), and what the
budget's hours per day are counted from (aexp.agent.budget.hours_launched). Each line is one
`write` of an O_APPEND descriptor under an exclusive lock, so lines of concurrent writers never
interleave; a torn last line (a full disk) is skipped by the reader.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aexp.door import storage_problem
from aexp.errors import WorkspaceError
from aexp.jobdoc import now_iso
from aexp.journal.writer import append_line
from aexp.mounts import probe_write

STATE_DIR = ".aexp"  # the project's own state beside the workspace (never committed)
LOG_NAME = "actions.jsonl"


def state_dir(root: str | os.PathLike, *parts: str) -> str:
    """`<root>/.aexp/<parts...>`, made if missing (mode 0700: only the owner reads it)."""
    path = os.path.join(os.fspath(root), STATE_DIR, *parts)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def log_path(root: str | os.PathLike) -> str:
    return os.path.join(os.fspath(root), STATE_DIR, LOG_NAME)


def record_action(
    root: str | os.PathLike,
    action: str,
    actor: Mapping[str, Any],
    jobs: Sequence[str],
    **details: Any,
) -> dict[str, Any]:
    """Append one action, already done, to the log and return it. Raises WorkspaceError (its
    sentence says the action was done and only its record is missing) when the file system
    refuses the line; `check_recordable` before the change makes that rare."""
    entry = {"at": now_iso(), "action": action, "actor": dict(actor), "jobs": list(jobs)}
    entry.update(details)
    line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode("utf-8")
    try:
        state_dir(root)
        fd = os.open(log_path(root), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            append_line(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        count = len(entry["jobs"])
        done = f"the {action} of {count} job(s) was done; only its line in {LOG_NAME} is missing"
        raise WorkspaceError(storage_problem(exc, _log_dir(root), done)) from None
    return entry


def check_recordable(root: str | os.PathLike) -> None:
    """Raise WorkspaceError (nothing changed) when the project's action log cannot take a line
    now (a full disk, a read-only `.aexp/`). A command that changes jobs calls it before the
    first change: a change is then not made without its record (which follows it)."""
    try:
        probe_write(state_dir(root))
    except OSError as exc:
        raise WorkspaceError(storage_problem(exc, _log_dir(root), "nothing was changed")) from None


def _log_dir(root: str | os.PathLike) -> str:
    return os.path.join(os.fspath(root), STATE_DIR)


def read_actions(root: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every action of the log, oldest first (none when there is no log)."""
    if not os.path.exists(log_path(root)):
        return
    with open(log_path(root), encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:  # a torn last line
                continue
            if isinstance(entry, dict):
                yield entry


__all__ = [
    "STATE_DIR",
    "check_recordable",
    "log_path",
    "read_actions",
    "record_action",
    "state_dir",
]
