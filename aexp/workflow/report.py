"""What one `python project.py run` did, in two lines: a summary, then what to do next.

    run: 7 finished, 1 failed, 1 preempted, 2 skipped this pass; 1 problem; 9 of 12 jobs finished.
    next: job 3f2a... failed: see its error.log, fix the cause, then aexp rearm 3f2a...; ...

With `-p N`, flow runs the operations in worker processes, so counters kept by the process that
prints the summary would miss their work. The summary is read from the jobs' states instead
(aexp.state: the documents, and the journals where an attempt is not recorded yet): `observe`
takes them before the pass and again after it, and `compare` sets them side by side (a job
whose state, attempt count or end changed was worked on). Each attempt records the pass that
started it (aexp.state.begin_pass, inherited by the pool's workers), so what another process
did meanwhile is not counted as this pass's work.

    finished   ended finished in this pass
    failed     its experiment failed in this pass (recorded failed; `aexp rearm` after a fix)
    preempted  stopped by a signal in this pass; the next run resumes it
    skipped    not finished and untouched by this pass: another process works on it (the
               next line names a live process that holds it), or its operation failed (the
               line above says why), or `-o` left it out
    problem    a document aexp cannot read (`corrupt`), a job whose state point cannot be read
               or a directory that is not a job (aexp.statepoints.damage_line), an attempt this
               pass left `running` because its end could not be written (a full disk; the
               next run resumes it), or a workspace that cannot be written

The exit code is 1 when an experiment failed in this pass or there is a problem, else 0. Several
`run` processes at once each count their own attempts only.

`python project.py run --json` prints the same as one JSON line, the last line of stdout
(`aexp.run/1`, PassReport.document; the two lines go to stderr then): what the experiments
print comes before it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from aexp.door import PASS_OUTCOME
from aexp.errors import WorkspaceError
from aexp.jobdoc import JobDir
from aexp.jobs import stray_job_dirs
from aexp.schema import FAILED, FINISHED, PREEMPTED
from aexp.state import CORRUPT, UNBOUND, begin_pass, current_pass, is_stale
from aexp.statepoints import damage_line, left_out, report_damage, statepoint_problem
from aexp.workflow.conditions import facts_of, say, warn_once
from aexp.workflow.operations import storage_said
from aexp.workflow.preflight import check_writable


@dataclass(frozen=True)
class Seen:
    """What the summary needs of one job, from its facts (aexp.workflow.conditions.facts_of).

    `state` is the job's state (aexp.state.job_state), or "unbound" or "corrupt" (then
    `problem` says why). `ours`: its last attempt was started by this process's pass.
    `left_running`: running, but its attempt is this process, or one of this pass that is gone.
    `holder`: running in another process that is alive ("process 1234 on node7").
    """

    state: str
    attempts: int = 0
    finished_at: str | None = None
    synced: bool = False
    needs_sync: bool = False
    left_running: bool = False
    problem: str | None = None
    ours: bool = False
    holder: str | None = None

    @property
    def mark(self) -> tuple[Any, ...]:
        """What changes when a pass works on the job."""
        return (self.state, self.attempts, self.finished_at, self.synced)


def seen_of(job: Any, stale_after: float, *, fresh: bool = False) -> Seen:
    """The Seen of `job` (anything with `id` and `path`) as its state says now. The facts are
    the ones the pass's conditions use (derived once per version of the document); `fresh`
    derives them again (after the pass: its attempts may have changed only journals)."""
    facts = facts_of(job, fresh=fresh)
    if facts.error is not None:
        return Seen(CORRUPT, problem=facts.error)
    if not facts.bound:
        return Seen(UNBOUND)
    mark = facts.mark
    this_pass = current_pass()
    ours = this_pass is not None and facts.last_pass == this_pass
    dead = mark is not None and not mark.ours and is_stale(mark, stale_after)
    return Seen(
        state=facts.state,
        attempts=facts.attempts,
        finished_at=facts.finished_at,
        synced=facts.synced,
        needs_sync=facts.needs_sync,
        left_running=mark is not None and (mark.ours or (ours and dead)),
        ours=ours,
        holder=None if mark is None or mark.ours or dead else _holder(mark),
    )


def _holder(mark: Any) -> str:
    where = f"process {mark.pid}" if mark.pid is not None else "a process"
    if mark.slurm_job_id:
        where += f" of SLURM job {mark.slurm_job_id}"
    return f"{where} on {mark.host or 'an unknown host'}"


@dataclass
class Observation:
    """The jobs of a pass as seen at one moment, and the directories that are not usable jobs
    (no state point file, or one signac could not read: aexp.statepoints.damage_line)."""

    jobs: dict[str, Seen]
    stray: list[str]


def observe(
    workspace: str,
    job_ids: Iterable[str] | None = None,
    *,
    stale_after: float = 300.0,
    fresh: bool = False,
) -> Observation:
    """Read the state of the jobs `job_ids` (default: every job in `workspace`); `fresh`: not
    the facts the pass's conditions derived (`seen_of`).

    One read of each job document (kept in the document cache, where the pass's conditions
    find it), no signac: about 30 microseconds per job; the run's journal's tail too for a job
    bound, running or preempted.
    """
    # Jobs left out for a state point signac could not read: a problem of any pass (a `-f`
    # filter could not tell whether they belong to it either).
    stray = sorted(left_out(workspace))
    if job_ids is None:
        stray = sorted({*stray_job_dirs(workspace), *stray})
        try:
            names = os.listdir(workspace)
        except FileNotFoundError:
            names = []
        skip = set(stray)
        job_ids = [n for n in names if len(n) == 32 and n not in skip and _is_hex(n)]
    jobs = {
        job_id: seen_of(JobDir(job_id, os.path.join(workspace, job_id)), stale_after, fresh=fresh)
        for job_id in job_ids
    }
    return Observation(jobs, stray)


def _is_hex(name: str) -> bool:
    try:
        int(name, 16)
    except ValueError:
        return False
    return name == name.lower()


@dataclass
class PassReport:
    """The outcome of one pass (see the module docstring)."""

    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    total: int = 0
    done: int = 0  # jobs whose run is finished, in all
    failed_now: list[str] = field(default_factory=list)  # jobs whose run is failed, in all
    unfinished: int = 0  # jobs that a later run (or another process) still has work for
    unsynced: int = 0
    held: dict[str, str] = field(default_factory=dict)  # job -> the live process running it
    # What the backends that still lack runs need from the host that syncs them.
    sync_needs: str = "credentials for each backend"

    @property
    def exit_code(self) -> int:
        """1 when an experiment failed in this pass or something needs the user, else 0."""
        return 1 if self.failed or self.problems else 0

    def document(self) -> dict[str, Any]:
        """The pass as `aexp.run/1` (docs/json.md): the job ids of each outcome of this pass,
        the totals, the exit code and the two lines."""
        from aexp.contract import document

        return document(
            "aexp.run/1",
            finished=self.finished,
            failed=self.failed,
            preempted=self.preempted,
            skipped=self.skipped,
            synced=self.synced,
            problems=self.problems,
            total=self.total,
            done=self.done,
            failed_runs=self.failed_now,
            unfinished=self.unfinished,
            unsynced=self.unsynced,
            exit_code=self.exit_code,
            summary=self.summary_line(),
            next=self.next_line(),
        )

    def summary_line(self) -> str:
        counts = (
            f"{len(self.finished)} finished, {len(self.failed)} failed, "
            f"{len(self.preempted)} preempted, {len(self.skipped)} skipped this pass"
        )
        if self.synced:
            counts += f" ({len(self.synced)} synced)"
        n = len(self.problems)
        problems = "no problems" if not n else f"{n} problem{'s' if n > 1 else ''} (above)"
        return f"run: {counts}; {problems}; {self.done} of {self.total} jobs finished."

    def next_line(self) -> str:
        steps = []
        if self.problems:
            steps.append("fix the problems named above, then run again")
        if len(self.failed_now) == 1:
            (job_id,) = self.failed_now
            steps.append(
                f"job {job_id} failed: see workspace/{job_id}/error.log, fix the cause, then "
                f"aexp rearm {job_id}"
            )
        elif self.failed_now:
            steps.append(
                f"{len(self.failed_now)} runs failed: see each job's error.log, fix the cause, "
                "then aexp runs --state failed -q | aexp rearm -"
            )
        if self.held:
            held = ", ".join(f"{job_id} by {holder}" for job_id, holder in self.held.items())
            pids = " ".join(h.split()[1] for h in self.held.values() if h.startswith("process "))
            stop = f" (kill {pids})" if pids else ""
            steps.append(
                f"{len(self.held)} job{'s are' if len(self.held) > 1 else ' is'} held by a "
                f"live process ({held}): left to it; to run it here, stop that process{stop} "
                "and run again"
            )
        if self.unfinished:
            steps.append(
                f"{self.unfinished} job{'s' if self.unfinished > 1 else ''} not finished yet: "
                "python project.py run again (or submit)"
            )
        if self.unsynced:
            steps.append(
                f"{self.unsynced} run{'s' if self.unsynced > 1 else ''} to upload: aexp "
                f"sync-offline from a login node with {self.sync_needs}"
            )
        steps.append(
            "results: aexp runs (one line per run), each run's journal in "
            "workspace/<job>/tracker_log/<run>/events.jsonl"
        )
        return "next: " + "; ".join(steps) + "."


def compare(
    before: Observation,
    after: Observation,
    workspace: str = "workspace",
    *,
    storage: str | None = None,
) -> PassReport:
    """The PassReport of a pass that found the jobs as `before` and left them as `after`.

    `storage` is the reason the workspace cannot be written after the pass, if it cannot (it
    covers the attempts it cut short). Every problem is said on stderr once per process: a
    corrupt document through `warn_once` (a job a condition reported already is not reported
    again), a job whose state point cannot be read or a directory that is not a job through
    `report_damage`. A job counts as worked on by this pass when it changed and its last
    attempt is this pass's (`Seen.ours`), or it changed without a new attempt while no other
    live process held it (an end recorded from its journal).
    """
    report = PassReport(total=len(after.jobs))
    if storage:
        report.problems.append(storage)
    for name in after.stray:
        report.problems.append(report_damage(workspace, name, say))
    for job_id, now in sorted(after.jobs.items()):
        then = before.jobs.get(job_id)
        changed = then is None or then.mark != now.mark
        if changed and (then is None or now.attempts > then.attempts or then.holder):
            # A new attempt, or one a live process held when the pass began (an orphaned
            # worker of a killed pass ending its experiment): this pass's work only if ours.
            changed = now.ours
        if now.problem is not None:
            warn_once(JobDir(job_id, ""), now.problem)
            report.problems.append(now.problem)
            continue
        report.done += now.state == FINISHED
        report.unsynced += now.needs_sync
        if now.state == FAILED:
            report.failed_now.append(job_id)
        elif now.state != FINISHED:
            report.unfinished += 1
        if now.synced and not (then and then.synced):
            report.synced.append(job_id)
        if now.holder and now.state not in (FINISHED, FAILED):
            report.held[job_id] = now.holder
        if not changed:
            if now.state in (FINISHED, FAILED):
                pass
            elif statepoint_problem(JobDir(job_id, os.path.join(workspace, job_id))):
                # Left undone for a state point that cannot be read (its operation said so, in
                # this process or a worker): a problem, with its repair.
                report.problems.append(damage_line(JobDir(job_id, f"{workspace}/{job_id}")))
            else:
                report.skipped.append(job_id)
        elif now.left_running:
            if not storage:  # else the storage problem says it
                problem = (
                    f"job {job_id} was left running: its end could not be written; it is "
                    "stale now and the next run resumes it."
                )
                warn_once(JobDir(job_id, ""), problem)  # unless its lost worker was named
                report.problems.append(problem)
        elif now.state == FINISHED and (then is None or then.state != FINISHED):
            report.finished.append(job_id)
        elif now.state == FAILED and (then is None or then.mark[:3] != now.mark[:3]):
            report.failed.append(job_id)
        elif now.state == PREEMPTED:
            report.preempted.append(job_id)
    return report


class PassWatch:
    """Watches one pass: `PassWatch(...)` before it, `finish()` after it (see the module).

    `job_ids` are the jobs the pass was given (None: the whole workspace, stray directories
    included); `backends` the project's (`[tracker] backend`: the advice names what a host
    needs to sync them). Starts the pass (aexp.state.begin_pass): make it before the pass's
    first attempt, and before `run -p N` forks its workers.
    """

    def __init__(
        self,
        workspace: str,
        job_ids: Iterable[str] | None = None,
        *,
        stale_after: float = 300.0,
        backends: Sequence[str] = (),
    ) -> None:
        self.workspace = workspace
        self.job_ids = None if job_ids is None else list(job_ids)
        self.stale_after = stale_after
        self.backends = tuple(backends)
        self.before = observe(workspace, self.job_ids, stale_after=stale_after)
        begin_pass()

    def finish(self, out: TextIO | None = None, *, json_line: bool = False) -> PassReport:
        """Read the jobs again, print the summary and the next steps to `out` (stdout), and
        return the report. With `json_line` the two lines go to stderr and the report's
        document (`PassReport.document`) is printed to `out` as one line."""
        after = observe(self.workspace, self.job_ids, stale_after=self.stale_after, fresh=True)
        storage = None
        try:
            check_writable(self.workspace, PASS_OUTCOME)  # after the pass: what it means for it
        except WorkspaceError as exc:
            storage = str(exc)
            if not storage_said():  # a worker process (`-p`) or nobody said it yet
                print(f"error: {storage}", file=sys.stderr)
        report = compare(self.before, after, self.workspace, storage=storage)
        if report.unsynced:
            report.sync_needs = sync_needs(self.backends) or report.sync_needs
        out = out or sys.stdout
        lines = sys.stderr if json_line else out
        print(report.summary_line(), file=lines)
        print(report.next_line(), file=lines, flush=True)
        if json_line:
            import json

            print(json.dumps(report.document(), separators=(",", ":")), file=out, flush=True)
        return report


def sync_needs(backends: Sequence[str]) -> str:
    """What a host needs to sync runs to `backends` (each adapter's `sync_needs`, for the
    backends that receive runs from a login node), joined; "" when none does."""
    from aexp.sync.rules import feed_of
    from aexp.trackers import ADAPTERS

    needs = [ADAPTERS[name].sync_needs for name in backends if feed_of(name) != "journal"]
    return " and ".join(dict.fromkeys(needs))


__all__ = [
    "Observation",
    "PassReport",
    "PassWatch",
    "Seen",
    "compare",
    "observe",
    "seen_of",
    "sync_needs",
]
