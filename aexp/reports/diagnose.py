"""Why a job is where it is: `aexp.diagnose/1`, one sentence and the evidence behind it.

For a job that is not running or that failed, what an agent (or a person) asks first: its state
as `aexp status` gives it (aexp.reports.status.job_seen, the same entry, read through
aexp.state.job_state), the run's attempts
from its journal (how many, how many preempted or killed), the tail of the job's error.log,
the process that holds the job now (its claim, looked at without taking it), the running
attempt's heartbeat, who launched it (job.doc["actor"]), and what to do next.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from aexp.contract import document
from aexp.errors import AexpError
from aexp.jobdoc import age_seconds, peek_doc
from aexp.joblock import claim_holder
from aexp.journal import journal_path, read_journal
from aexp.outcome import ERROR_LOG
from aexp.reports.status import job_seen, probe_of

DIAGNOSE = "aexp.diagnose/1"
TAIL_LINES = 20


def error_tail(job_path: str, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of the job's error.log (none without one)."""
    try:
        with open(os.path.join(job_path, ERROR_LOG), encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
    except FileNotFoundError:
        return []


def _why(
    entry: dict[str, Any], holder: str | None, preempted: int, age: float | None
) -> tuple[str, list[str]]:
    """One sentence for the job's state, and the tools that move it on."""
    job_id, state = entry["job_id"], entry["state"]
    if state == "corrupt":
        return f"job {job_id} cannot be read: {entry['problem']}", ["show"]
    if state == "unbound":
        why = f"job {job_id} has not run yet"
        return (f"{why}; {holder}" if holder else f"{why}: run it."), ["run_here", "submit"]
    if state == "running" and entry["stale"]:
        return (
            f"job {job_id}'s attempt died (no heartbeat for {age or 0:.0f} s, or its process is "
            "gone); the next run resumes it from its last checkpoint.",
            ["run_here", "submit"],
        )
    if state == "running" and entry["stalled"]:
        return (
            f"job {job_id} is stalled: its process is alive (heartbeat {age or 0:.0f} s ago) but "
            "its journal has logged nothing for longer than its own pace allows; look at what "
            "it waits for ([workflow] on_stall = preempt stops and requeues such an attempt).",
            ["status"],
        )
    if state == "running":
        return f"job {job_id} is executing (heartbeat {age or 0:.0f} s ago).", ["status"]
    if state == "preempted":
        return (
            f"job {job_id} was preempted ({preempted} time(s) so far, exit code "
            f"{entry.get('exit_code', '-')}); the next run resumes it.",
            ["run_here", "submit"],
        )
    if state == "bound":
        return f"job {job_id} is bound to run {entry['run_id']} and waits to execute.", [
            "run_here",
            "submit",
        ]
    if state == "failed":
        return (
            f"job {job_id}'s experiment failed: {entry['error']}; see error.log below, fix the "
            "cause, then rearm it (the same run continues) or rerun it (a new run).",
            ["rearm", "rerun"],
        )
    due = [name for name, p in entry["backends"].items() if p["needs_sync"]]
    if due:
        return f"job {job_id} finished; {', '.join(due)} still to sync.", ["sync"]
    return f"job {job_id} finished.", []


def _recorded_where(doc: dict[str, Any]) -> dict[str, Any] | None:
    """Where the job's last recorded attempt ran (its document's `attempt`)."""
    where = doc.get("attempt")
    return where if isinstance(where, dict) else None


def diagnose_document(job: Any, *, stale_after: float) -> dict[str, Any]:
    """Why `job` (anything with `id` and `path`) is where it is: `aexp.diagnose/1`."""
    workspace, job_id = os.path.split(job.path)
    seen = job_seen(workspace, job_id, stale_after)
    entry = seen.entry
    try:
        doc = peek_doc(job)
    except AexpError:
        doc = {}
    # The binding as the job's state has it (its run's journal, before the document has it).
    binding = dict(seen.state.binding or {}) if seen.state is not None else {}
    mark = seen.state.mark if seen.state is not None else None
    attempts: list[dict[str, Any]] = []
    if entry["run_id"]:
        try:
            journal = read_journal(journal_path(job.path, entry["run_id"]))
        except (OSError, ValueError):
            journal = None
        for index, a in enumerate(journal.attempts if journal else []):
            later = index + 1 < len(journal.attempts)
            ended = "preempted" if a.preempted else "ended" if a.finished else None
            if ended is None:
                ended = (
                    "killed"
                    if later
                    else ("running" if entry["state"] == "running" else "cut short")
                )
            attempts.append(
                {
                    "number": a.number,
                    "host": a.host,
                    "started_at": a.started_at,
                    "ended_at": a.ended_at,
                    "exit_code": a.exit_code,
                    "ended": ended,
                    "last_step": a.last_step,
                }
            )
    preempted = sum(a["ended"] == "preempted" for a in attempts)
    holder = claim_holder(job) if entry["state"] != "corrupt" else None
    age = age_seconds(mark.heartbeat_at) if mark is not None else None
    entry = {**entry, "exit_code": binding.get("exit_code")}
    why, tools = _why(entry, holder, preempted, age)
    return document(
        DIAGNOSE,
        job_id=job.id,
        state=entry["state"],
        stale=entry["stale"],
        stalled=entry["stalled"],
        shown=entry["shown"],
        why=why,
        next=tools,
        run_id=entry["run_id"],
        exit_code=binding.get("exit_code"),
        error=entry["error"],
        attempts=attempts,
        preemptions=preempted,
        killed=sum(a["ended"] == "killed" for a in attempts),
        holder=holder,
        heartbeat_age_s=None if age is None else round(age, 1),
        where=probe_of(mark)["attempt"] if mark is not None else _recorded_where(doc),
        error_log={"path": os.path.join(job.path, ERROR_LOG), "tail": error_tail(job.path)},
        actor=doc.get("actor") if isinstance(doc.get("actor"), dict) else None,
    )


__all__ = ["DIAGNOSE", "diagnose_document", "error_tail"]
