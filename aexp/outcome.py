"""How an attempt's end is recorded where the attempt itself cannot say it: from the run's
journal (`settle`: the attempt's process died after its `finish`), its traceback into the job's
error.log (`record_error`), and which errors stop it from outside (`is_storage_error`).

aexp.attempt records an attempt's own end; aexp.lifecycle and `finish_run` use these.
"""

from __future__ import annotations

import errno
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aexp.binding import get_binding, update_backend
from aexp.jobdoc import now_iso, strict_json, update_doc
from aexp.journal import Tail, journal_file, read_journal
from aexp.schema import FAILED, FINISHED, PREEMPTED

ERROR_LOG = "error.log"
# A file system that is full, over quota or read-only stops an attempt from outside, as a
# signal does: not the experiment's failure. Such an attempt is recorded preempted (exit code 1,
# the OSError in `error`) and resumes from its last checkpoint once there is room again.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# The job's `status` for each way an attempt ends (docs/job-document.md).
STATUS_OF = {FINISHED: "complete", FAILED: "failed", PREEMPTED: "preempted"}


def settle(job: Any, binding: Mapping[str, Any], tail: Tail) -> dict[str, Any]:
    """Record the end of the journal's last attempt, which the job's document does not know
    (its process died after the journal's `finish`): its state, exit code, step and summary,
    from the journal, in one document update. Returns the binding as stored."""
    finish = tail.last or {}
    code = finish.get("exit_code")
    code = code if type(code) is int else 1
    state = PREEMPTED if finish.get("preempted") else (FINISHED if code == 0 else FAILED)
    number = tail.attempt or binding.get("attempts", 0)
    journal = read_journal(journal_file(job.path, binding["run_id"]))
    last_step = journal.last_step
    ended = now_iso()

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        current = doc.get("tracker")
        if current is None:
            current = dict(binding)
        elif not isinstance(current, dict) or current.get("run_id") != binding["run_id"]:
            return None
        settled = {**current, "state": state, "exit_code": code, "error": None, "closed": True}
        if number > current.get("attempts", 0):  # its start was never recorded either
            settled["attempts"] = number
            settled["synced_at"] = None
            for name in settled.get("backends") or {}:
                settled = update_backend(settled, name, synced_at=None)
        if state != PREEMPTED:
            settled["finished_at"] = settled.get("finished_at") or ended
        settled["last_step"] = -1 if last_step is None else last_step
        settled["summary"] = strict_json(journal.summary)
        return {
            "status": STATUS_OF[state],
            "ended_at": ended,
            "heartbeat_at": ended,
            "tracker": settled,
        }

    stored = update_doc(job, change)
    return get_binding(job, stored) or dict(binding)


def is_storage_error(exc: BaseException) -> bool:
    """True for an OSError of a file system that refuses writes (STORAGE_ERRNOS)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def warn(job: Any, message: str) -> None:
    """One warning line on stderr naming the job."""
    print(f"warning: job {job.id}: {message}", file=sys.stderr)


def record_error(job: Any, attempt: int | None) -> str:
    """Append the exception being handled to the job's error.log; returns its first line
    (`Type: message`, at most 500 characters) for the document's `error`."""
    exc_type, exc, _ = sys.exc_info()
    line = f"{exc_type.__name__}: {exc}" if exc_type else "unknown error"
    try:
        with open(Path(job.path, ERROR_LOG), "a", encoding="utf-8") as fh:
            fh.write(f"--- {now_iso()} attempt {attempt}\n{traceback.format_exc()}\n")
    except OSError as err:  # a full disk or read-only workspace: the line below still says it
        line += f" (error.log not written: {err.strerror or err})"
    return line.splitlines()[0][:500]


__all__ = [
    "ERROR_LOG",
    "STATUS_OF",
    "STORAGE_ERRNOS",
    "is_storage_error",
    "record_error",
    "settle",
    "warn",
]
