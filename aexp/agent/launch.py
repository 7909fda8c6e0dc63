"""Start work: run jobs here in the background, bounded, or submit them to SLURM. Both are the
project's own commands, run as they are (never a second implementation of the workflow):

    start_run_here(root, job_ids, budget_s=..., actor=...)   python project.py run -j IDS --json
    run_progress(root, handle)                               where it stands: aexp.run-here/1
    submit_jobs(root, job_ids, actor=...)                    python project.py submit -j IDS

A run here is watched by a small supervisor process of its own (`python -m aexp.agent.launch`,
in a session of its own, so it outlives the MCP server that started it): it starts `project.py
run` in a process group, and when the wall-clock budget is spent sends that group SIGTERM, a
preemption each running attempt records (the next run resumes it), then SIGKILL after `[agent]
grace` seconds. It records the outcome and the pass summary (`aexp.run/1`) in
`.aexp/runs/<handle>.json`, which `run_progress` reads, with the jobs' status entries.

Both hand the actor down (AEXP_ACTOR): each attempt records who launched it, and `submit`
checks the budget of an agent and logs the submission with its cost (`admit_submission`,
`record_submission`, called by aexp.workflow.project).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aexp.agent.actor import current_actor, hand_down
from aexp.agent.budget import check_launch, cost_of, queued_job_ids
from aexp.agent.history import check_recordable, record_action, state_dir
from aexp.contract import document
from aexp.errors import AexpError
from aexp.jobdoc import now_iso

RUN_HERE = "aexp.run-here/1"
SUBMIT = "aexp.submit/1"
_HANDLE_CHARS = set("0123456789abcdef")


def _runs(root: str | os.PathLike) -> str:
    return state_dir(root, "runs")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _save(path: str, record: Mapping[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    os.replace(tmp, path)


def _alive(pid: Any) -> bool:
    if type(pid) is not int or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


KEEP_S = 7 * 86400  # how long the record and logs of an ended run here are kept


def live_runs(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The runs here started by agents whose supervisor still runs. The records (and logs) of
    runs that ended more than KEEP_S ago are removed on the way."""
    where = os.path.join(os.fspath(root), ".aexp", "runs")
    found = []
    old = time.time() - KEEP_S
    with contextlib.suppress(FileNotFoundError), os.scandir(where) as entries:
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            with contextlib.suppress(OSError, ValueError):
                with open(entry.path, encoding="utf-8") as fh:
                    record = json.load(fh)
                if record.get("state") == "running" and _alive(record.get("pid")):
                    found.append(record)
                elif entry.stat().st_mtime < old:
                    for suffix in (".json", ".log", ".out"):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path.removesuffix(".json") + suffix)
    return found


def active_jobs(root: str | os.PathLike, stale_after: float) -> set[str]:
    """The jobs running now (alive), queued in SLURM, or handed to a run here that is still
    going: what `[agent] max_active` counts."""
    from aexp.reports.status import job_ids, job_seen

    workspace = os.path.join(os.fspath(root), "workspace")
    running = set()
    for job_id in job_ids(workspace):
        entry = job_seen(workspace, job_id, stale_after).entry
        if entry["state"] == "running" and not entry["stale"]:
            running.add(job_id)
    handed = {job_id for record in live_runs(root) for job_id in record.get("jobs", [])}
    return running | queued_job_ids(workspace) | handed


def start_run_here(
    root: str | os.PathLike,
    job_ids: Sequence[str],
    *,
    budget_s: float,
    grace_s: float,
    actor: Mapping[str, Any],
    cost: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Run `project.py run -j JOB_IDS --json` in the background, for at most `budget_s` seconds
    of wall clock (then SIGTERM, SIGKILL `grace_s` later); returns its `aexp.run-here/1`."""
    root = os.fspath(root)
    check_recordable(root)  # a full disk refuses the launch before anything starts
    handle = "r1-" + secrets.token_hex(8)
    base = os.path.join(_runs(root), handle)
    started = time.time()
    record = {
        "handle": handle,
        "jobs": list(job_ids),
        "budget_s": budget_s,
        "grace_s": grace_s,
        "started_at": _iso(started),
        "deadline": started + budget_s,
        "deadline_at": _iso(started + budget_s),
        "state": "running",
        "pid": None,
        "exit_code": None,
        "pass": None,
        "ended_at": None,
        "actor": dict(actor),
    }
    _save(base + ".json", record)
    with open(base + ".log", "ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "aexp.agent.launch", root, handle],
            cwd=root,
            env={**os.environ, **hand_down(actor)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives the server that started it
        )
    record["pid"] = supervisor.pid
    _save(base + ".json", record)
    record_action(root, "launch", actor, list(job_ids), handle=handle, cost=dict(cost or {}))
    return run_progress(root, handle, stale_after=None)


def _load(root: str, handle: str) -> dict[str, Any]:
    if not (handle.startswith("r1-") and len(handle) == 19 and set(handle[3:]) <= _HANDLE_CHARS):
        raise AexpError(f"{handle!r} is not a run handle (r1- and 16 hex digits).")
    try:
        with open(os.path.join(root, ".aexp", "runs", handle + ".json"), encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise AexpError(f"no run here with handle {handle!r} in {root}.") from None


def _tail(path: str, lines: int = 10) -> list[str]:
    from collections import deque

    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
    except FileNotFoundError:
        return []


def run_progress(
    root: str | os.PathLike, handle: str, *, stale_after: float | None = None
) -> dict[str, Any]:
    """Where a run here stands: `aexp.run-here/1`, with each of its jobs' status entries.

    `state`: running, done (the pass ended), timed_out (its wall-clock budget ran out; the jobs
    it stopped are preempted and resume on the next run), or lost (its supervisor is gone
    without a word: killed). Raises AexpError for an unknown handle.
    """
    from aexp.reports.status import job_seen

    root = os.fspath(root)
    record = _load(root, handle)
    if stale_after is None:
        from aexp.settings import load_settings

        stale_after = load_settings(root).stale_after
    state = record["state"]
    if state == "running" and record.get("pid") and not _alive(record["pid"]):
        record = _load(root, handle)  # it may have ended between the two reads
        state = record["state"] if record["state"] != "running" else "lost"
    workspace = os.path.join(root, "workspace")
    jobs = [
        job_seen(workspace, job_id, stale_after).entry
        for job_id in record["jobs"]
        if os.path.isdir(os.path.join(workspace, job_id))
    ]
    return document(
        RUN_HERE,
        handle=handle,
        state=state,
        jobs=jobs,
        started_at=record["started_at"],
        deadline_at=record["deadline_at"],
        ended_at=record.get("ended_at"),
        exit_code=record.get("exit_code"),
        pass_summary=record.get("pass"),
        log_tail=_tail(os.path.join(root, ".aexp", "runs", handle + ".log")),
    )


def _supervise(root: str, handle: str) -> int:
    """The supervisor's body (module docstring)."""
    base = os.path.join(root, ".aexp", "runs", handle)
    record = _load(root, handle)
    with open(base + ".out", "wb") as out:
        child = subprocess.Popen(
            [sys.executable, "project.py", "run", "-j", *record["jobs"], "--json"],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            process_group=0,
        )

        def forward(signum: int, _frame: Any) -> None:  # the supervisor stopped: stop the run
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        state = "done"
        try:
            code = child.wait(timeout=max(record["deadline"] - time.time(), 0))
        except subprocess.TimeoutExpired:
            state = "timed_out"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)  # a preemption, recorded by each attempt
            try:
                code = child.wait(timeout=record["grace_s"])
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                code = child.wait()
    summary = None
    lines = _tail(base + ".out", 1)
    with contextlib.suppress(ValueError, IndexError):
        last = json.loads(lines[-1])
        summary = last if isinstance(last, dict) and last.get("schema") == "aexp.run/1" else None
    record = _load(root, handle)
    record.update(state=state, exit_code=code, ended_at=now_iso(), **{"pass": summary})
    _save(base + ".json", record)
    return 0


def submit_jobs(
    root: str | os.PathLike, job_ids: Sequence[str], *, actor: Mapping[str, Any]
) -> dict[str, Any]:
    """`python project.py submit -j JOB_IDS` as `actor`: `aexp.submit/1` with what it said.
    project.py's `submit` checks an agent's budget itself and logs the submission
    (`admit_submission`)."""
    root = os.fspath(root)
    done = subprocess.run(
        [sys.executable, "project.py", "submit", "-j", *job_ids],
        cwd=root,
        env={**os.environ, **hand_down(actor)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    said = [line for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    error = None
    if done.returncode != 0:
        error = next(
            (line for line in reversed(said) if "error" in line.lower()), said[-1] if said else None
        )
    return document(
        SUBMIT,
        jobs=list(job_ids),
        exit_code=done.returncode,
        submitted=done.returncode == 0,
        error=error,
        output=said[-20:],
    )


def admit_submission(
    root: str | os.PathLike,
    settings: Any,
    operations: Iterable[tuple[Sequence[str], Mapping[str, Any]]],
) -> tuple[dict[str, Any], dict[str, float], list[str]]:
    """Admit a submission that `python project.py submit` is about to send: `operations` are
    (job ids, directives) of each operation. Returns (the actor, the cost, the job ids).

    An agent's submission (aexp.agent.actor) is checked against `[agent]` (BudgetError, one
    sentence, nothing submitted); a person's is not. The actor is handed down (AEXP_ACTOR in
    this process's environment, which sbatch exports), so each attempt on a compute node
    records who submitted it.
    """
    operations = list(operations)
    jobs = sorted({job_id for ids, _ in operations for job_id in ids})
    cost = {"jobs": len(jobs), **cost_of(directives for _, directives in operations)}
    actor = current_actor("python project.py submit", root=root)
    if actor["kind"] == "agent":
        active = active_jobs(root, settings.stale_after)
        check_launch(root, settings.agent, action="submission", jobs=jobs, cost=cost, active=active)
    os.environ.update(hand_down(actor))
    return actor, cost, jobs


def record_submission(
    root: str | os.PathLike,
    admitted: tuple[Mapping[str, Any], Mapping[str, float], Sequence[str]] | None,
    pretend: bool = False,
) -> None:
    """Log a submission that was sent: what `admit_submission` returned for it (the budget's
    hours per day count it). Nothing for None (nothing admitted) or a `pretend` submission."""
    if admitted is None or pretend:
        return
    actor, cost, jobs = admitted
    if jobs:
        record_action(root, "submit", actor, list(jobs), cost=dict(cost))


if __name__ == "__main__":  # python -m aexp.agent.launch ROOT HANDLE: the supervisor
    sys.exit(_supervise(sys.argv[1], sys.argv[2]))
