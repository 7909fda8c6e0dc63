"""An execution attempt as the job document records it: its start, its end, and whether it is
still alive (docs/job-document.md). Each record is one locked update of the document.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aexp.agent.actor import with_action, workflow_actor
from aexp.binding import get_binding, update_backend
from aexp.errors import BindingError, JobBusyError
from aexp.jobdoc import age_seconds, now_iso, strict_json, update_doc
from aexp.jobs import project_root_of
from aexp.journal import journal_path, read_journal, read_tail
from aexp.schema import COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING

if TYPE_CHECKING:  # imported where an attempt starts: `status` judges staleness without it
    from aexp.tracker import Tracker

ERROR_LOG = "error.log"
# A file system that is full, over quota or read-only stops an attempt from outside, as a
# signal does: not the experiment's failure. Such an attempt is recorded preempted (exit code 1,
# the OSError in `error`) and resumes from its last checkpoint once there is room again.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_HOST = os.uname().nodename  # socket.gethostname(), without importing socket


class NothingToRun(BindingError):
    """The run has ended (finished, or failed and not re-armed): there is no attempt to start.

    Found under the job's claim, so it also means that another process finished the job after
    this one chose to execute it; the workflow skips the job quietly then.
    """


def attempt_identity() -> dict[str, Any]:
    """Where this attempt runs, so another process can tell whether it is still alive."""
    return {
        "host": _HOST,
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_restart_count": os.environ.get("SLURM_RESTART_COUNT", "0"),
    }


def is_stale(doc: Mapping[str, Any], stale_after: float) -> bool:
    """True if the attempt the document records as running is known to be dead.

    Dead means: its heartbeat is missing or older than `stale_after` seconds; or it ran on this
    host and its process is gone; or it ran in the SLURM job this process belongs to and SLURM
    has restarted that job since (a requeue after a node failure). The last two need no waiting.
    """
    age = age_seconds(doc.get("heartbeat_at"))
    if age is None or age > stale_after:
        return True
    attempt = doc.get("attempt")
    if not isinstance(attempt, dict):
        return False
    pid = attempt.get("pid")
    if attempt.get("host") == _HOST and type(pid) is int and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):  # alive and someone else's / not a pid
            pass
    slurm_job = os.environ.get("SLURM_JOB_ID")
    return bool(
        slurm_job
        and attempt.get("slurm_job_id") == slurm_job
        and attempt.get("slurm_restart_count") != os.environ.get("SLURM_RESTART_COUNT", "0")
    )


def start_attempt(
    job: Any, stale_after: float, bind: Callable[[dict[str, Any]], dict[str, Any]] | None
) -> tuple[dict[str, Any] | None, bool]:
    """Mark the job running (binding it first when `bind` is given) in one locked update.

    Returns the binding as stored (None for an unbound job run without a tracker) and whether
    this update bound the job (then its journal is this attempt's to start). Who launched the
    attempt (aexp.agent.actor.workflow_actor) is recorded as `job.doc["actor"]["launch"]`.
    """
    started = now_iso()
    launcher = workflow_actor(project_root_of(job))
    result: dict[str, Any] = {}
    bound_now = False

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        nonlocal bound_now
        binding = get_binding(job, doc)
        bound_now = binding is None and bind is not None
        if bound_now:
            binding = bind(doc)
        if binding is not None:
            state = binding["state"]
            if state == RUNNING and not is_stale(doc, stale_after):
                raise JobBusyError(
                    f"job {job.id} is already executing elsewhere (heartbeat "
                    f"{age_seconds(doc.get('heartbeat_at')):.0f} s ago)."
                )
            if state in (COMPLETED, FINISHED):
                raise NothingToRun(f"job {job.id}'s run already {state}; nothing to run.")
            if state == FAILED:
                raise NothingToRun(
                    f"job {job.id}'s run failed; re-arm it first with: aexp rearm {job.id}"
                )
            binding = {
                **binding,
                "state": RUNNING,
                "attempts": binding.get("attempts", 0) + 1,
                "exit_code": None,
                "error": None,
                "closed": False,
                "synced_at": None,  # this attempt adds to the run: every mirror syncs again
            }
            for name in binding.get("backends") or {}:
                binding = update_backend(binding, name, synced_at=None)
            result.update(binding)
        updates: dict[str, Any] = {
            "status": "running",
            "attempt": attempt_identity(),
            "started_at": started,
            "heartbeat_at": started,
            "ended_at": None,
            "wallclock_s": None,
        }
        if binding is not None:
            updates["tracker"] = binding
            launch = {**launcher, "run_id": binding["run_id"], "attempt": binding["attempts"]}
            updates["actor"] = with_action(doc, "launch", launch)
        return updates

    update_doc(job, change)
    return result or None, bound_now


def record_end(
    job: Any,
    *,
    state: str,
    exit_code: int,
    error: str | None = None,
    tracker: Tracker | None = None,
    wallclock: float | None = None,
    mirror_errors: Mapping[str, str] | None = None,
    mirror_extras: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Record an attempt's outcome (and the run's, unless preempted) in one locked update."""
    ended = now_iso()
    status = {FINISHED: "complete", FAILED: "failed", PREEMPTED: "preempted"}[state]

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        updates: dict[str, Any] = {"status": status, "ended_at": ended, "heartbeat_at": ended}
        if wallclock is not None:
            updates["wallclock_s"] = round(wallclock, 3)
        binding = doc.get("tracker")
        if isinstance(binding, dict) and binding.get("run_id"):
            binding = {
                **binding,
                "state": state,
                "exit_code": exit_code,
                "error": error,
                "closed": True,
            }
            if state != PREEMPTED:
                binding["finished_at"] = binding.get("finished_at") or ended
            if tracker is not None:
                binding["last_step"] = tracker.step - 1
                binding["summary"] = strict_json(tracker.summary)
            for name, reason in (mirror_errors or {}).items():
                binding = update_backend(binding, name, error=reason)
            for name, extra in (mirror_extras or {}).items():
                binding = update_backend(binding, name, extra=dict(extra))
            updates["tracker"] = binding
        return updates

    return update_doc(job, change)


def is_storage_error(exc: BaseException) -> bool:
    """True for an OSError of a file system that refuses writes (STORAGE_ERRNOS)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def warn(job: Any, message: str) -> None:
    print(f"warning: job {job.id}: {message}", file=sys.stderr)


def record_error(job: Any, attempt: int | None) -> str:
    exc_type, exc, _ = sys.exc_info()
    line = f"{exc_type.__name__}: {exc}" if exc_type else "unknown error"
    try:
        with open(Path(job.path, ERROR_LOG), "a", encoding="utf-8") as fh:
            fh.write(f"--- {now_iso()} attempt {attempt}\n{traceback.format_exc()}\n")
    except OSError as err:  # a full disk or read-only workspace: the line below still says it
        line += f" (error.log not written: {err.strerror or err})"
    return line.splitlines()[0][:500]


def ended_in_journal(job: Any, binding: Mapping[str, Any]) -> dict[str, Any] | None:
    """The journal's `finish` event of the attempt the binding records as running, if it has
    one (the attempt ended but its process died before recording that in the document)."""
    last, _ = read_tail(journal_path(job.path, binding["run_id"]))
    if last is not None and last.get("event") == "finish":
        return last
    return None


def settle_from_journal(job: Any, binding: Mapping[str, Any], finish: Mapping[str, Any]) -> None:
    code = finish.get("exit_code")
    code = code if type(code) is int else 1
    state = PREEMPTED if finish.get("preempted") else (FINISHED if code == 0 else FAILED)
    from aexp.tracker import Tracker

    journal = read_journal(journal_path(job.path, binding["run_id"]))
    tracker = Tracker(job=job, run_id=binding["run_id"], step=(journal.last_step or -1) + 1)
    tracker.summary = journal.summary
    record_end(job, state=state, exit_code=code, tracker=tracker)


__all__ = [
    "ERROR_LOG",
    "STORAGE_ERRNOS",
    "NothingToRun",
    "attempt_identity",
    "ended_in_journal",
    "is_stale",
    "is_storage_error",
    "record_end",
    "record_error",
    "settle_from_journal",
    "start_attempt",
    "warn",
]
