"""A job's state: the one definition that status, the pass summary, the runs table, the sync and
`aexp remove` read.

    job_state(job, doc=None, *, stale_after=None) -> JobState

The job document records the job's binding and the outcome of each attempt. An attempt's start
is recorded in its run's journal at once (the `resume_run` event: attempt number, host, pid,
SLURM job) and in the document only once the attempt has run for a second (its first heartbeat)
or has ended: a sweep of short jobs pays one document write per attempt, not two. A job's first
attempt also binds it, and the document learns that binding at the same moments; until then the
run's `init_run` event holds it (`aexp.binding.pending_binding`). So a job's state is the
document's, brought up to date from the end of the run's journal wherever the document may lag:

    state      meaning                                              evidence beyond the document
    unbound    no run: no binding, in the document or in a journal   a stat of <job>/tracker_log
    corrupt    the document or its binding cannot be read (`problem`)
    bound      bound to a run that has not executed (re-armed, rerun) the journal's tail
    running    an attempt started and has not ended as far as the     the journal's tail
               document and the journal tell; `stale` once its
               process is known dead (`is_stale`); `stalled` while
               its heartbeat is fresh but its journal has logged
               nothing for longer than its own pace allows
               (`is_stalled`)
    preempted  stopped from outside; `execute` resumes it             the journal's tail
    completed  ended, its run not closed (aexp before 0.2 only)
    failed     the experiment raised; terminal until re-armed or rerun
    finished   the attempt completed and the run is closed

The journal's tail is read at most TAIL_BYTES from its end (the opening of any attempt the
document has not recorded is there: such an attempt is at most a second old, or dead). `status`
reads it for the jobs that are bound, running or preempted, not for the others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aexp.binding import get_binding, pending_binding
from aexp.errors import BindingError
from aexp.jobdoc import age_seconds, peek_doc
from aexp.joblock import current_pid
from aexp.journal import Tail, journal_file, read_tail
from aexp.schema import BOUND, COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING

UNBOUND, CORRUPT = "unbound", "corrupt"
STALE, STALLED = "stale", "stalled"  # what a running job shows when it is (JobState.shown)
# Every state `job_state` can give, in a job's usual order.
JOB_STATES = (UNBOUND, CORRUPT, BOUND, RUNNING, PREEMPTED, COMPLETED, FAILED, FINISHED)
# Every word `JobState.shown` can give: what a view prints and a `--state` filter accepts.
SHOWN_STATES = (*JOB_STATES, STALE, STALLED)
TAIL_BYTES = 1 << 16
# A running attempt is stalled once its journal has logged nothing for PACE_FACTOR times the
# longest gap between two of its rows so far, and at least `[workflow] stall_after` seconds
# (`stall_bound`). Five: a job that slows down (a busy node, a slower phase) is not stalled; a
# deadlock, a hung collective or a dead data loader is, within a few of its own steps.
PACE_FACTOR = 5.0
_HOST = os.uname().nodename  # socket.gethostname(), without importing socket
# A process's start time may lag the moment the attempt it runs records by clock granularity;
# a process created more than this after an attempt started cannot be that attempt's.
_START_SLACK_S = 2.0
_pass: str | None = None  # the `run` pass this process (or the process it forked from) is in


def begin_pass() -> str:
    """Start a new pass of `run` in this process: every attempt it starts, here or in a process
    forked from here (a pool worker of `run -p N`), records the returned id (`pass_id`), so the
    pass summary counts this pass's own work and not a neighbour's."""
    global _pass
    _pass = f"{_HOST}:{os.getpid()}:{time.time_ns()}"
    return _pass


def current_pass() -> str | None:
    """The id `begin_pass` gave this process's pass (None outside a pass)."""
    return _pass


def attempt_identity() -> dict[str, Any]:
    """Where this process runs, as an attempt records it (journal and document), so another
    process can tell whether the attempt is still alive: host, pid, SLURM job id and restart
    count (`SLURM_JOB_ID`, `SLURM_RESTART_COUNT`), and the pass that started it (`pass_id`,
    None outside a `run`)."""
    return {
        "host": _HOST,
        "pid": current_pid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_restart_count": os.environ.get("SLURM_RESTART_COUNT", "0"),
        "pass_id": _pass,
    }


@dataclass(frozen=True, slots=True)
class Mark:
    """An attempt as the document or its run's journal records it: its number, where it runs
    (host, pid, SLURM job), when it started, and its last sign of life (`heartbeat_at`: the
    document's heartbeat, or the time of the journal's last event). `ended`: the journal has
    its `finish`, the document not yet (its process died in between, or is writing it now).
    `pass_id`: the pass of `run` that started it (`begin_pass`)."""

    attempt: int | None = None
    started_at: str | None = None
    heartbeat_at: str | None = None
    host: str | None = None
    pid: Any = None
    slurm_job_id: str | None = None
    slurm_restart_count: str | None = None
    ended: bool = False
    pass_id: str | None = None
    progress_at: str | None = None
    pace_s: float | None = None

    @classmethod
    def of_doc(cls, doc: Mapping[str, Any]) -> Mark:
        """The attempt a document records (`attempt`, `started_at`, `heartbeat_at`)."""
        where = doc.get("attempt")
        where = where if isinstance(where, Mapping) else {}
        binding = doc.get("tracker")
        number = binding.get("attempts") if isinstance(binding, Mapping) else None
        return cls(
            attempt=number if type(number) is int else None,
            started_at=doc.get("started_at"),
            heartbeat_at=doc.get("heartbeat_at"),
            host=where.get("host"),
            pid=where.get("pid"),
            slurm_job_id=where.get("slurm_job_id"),
            slurm_restart_count=where.get("slurm_restart_count"),
            pass_id=where.get("pass_id"),
        )

    @classmethod
    def of_tail(cls, tail: Tail) -> Mark:
        """The journal's last attempt: its opening `resume_run`, its last event."""
        opening = tail.opening or {}
        last = tail.last or {}
        return cls(
            attempt=tail.attempt,
            started_at=opening.get("timestamp"),
            heartbeat_at=last.get("timestamp"),
            host=opening.get("host"),
            pid=opening.get("pid"),
            slurm_job_id=opening.get("slurm_job_id"),
            slurm_restart_count=opening.get("slurm_restart_count"),
            ended=tail.event == "finish",
            pass_id=opening.get("pass_id"),
            progress_at=last.get("timestamp"),
            pace_s=tail.pace,
        )

    def with_progress(self, tail: Tail) -> Mark:
        """This mark (the document's record of a running attempt) with the progress the
        journal's tail shows, when the tail's last attempt is this one and still in flight."""
        if not tail.in_flight or tail.attempt != self.attempt or tail.last is None:
            return self
        return replace(self, progress_at=tail.last.get("timestamp"), pace_s=tail.pace)

    @property
    def ours(self) -> bool:
        """The attempt is this very process."""
        return self.host == _HOST and self.pid == os.getpid()


def is_stale(record: Mark | Mapping[str, Any], stale_after: float) -> bool:
    """True if the attempt `record` (a Mark, or a job document) describes is known to be dead.

    Dead means: its last sign of life is missing or older than `stale_after` seconds; or it ran
    on this host and its process is gone (`process_gone`: no such process, a zombie, or a later
    process under a reused pid); or it ran in the SLURM job this process belongs to and SLURM
    has restarted that job since (a requeue after a node failure). The last two need no
    waiting.
    """
    mark = record if isinstance(record, Mark) else Mark.of_doc(record)
    age = age_seconds(mark.heartbeat_at)
    if age is None or age > stale_after:
        return True
    pid = mark.pid
    here = mark.host == _HOST and type(pid) is int and pid != os.getpid()
    if here and process_gone(pid, mark.started_at):
        return True
    slurm_job = os.environ.get("SLURM_JOB_ID")
    return bool(
        slurm_job
        and mark.slurm_job_id == slurm_job
        and mark.slurm_restart_count != os.environ.get("SLURM_RESTART_COUNT", "0")
    )


def process_gone(pid: int, started_at: str | None = None) -> bool:
    """Whether process `pid` of this host no longer runs the attempt that started at
    `started_at` (ISO-8601): no such process, a zombie (it ended and nobody collected its exit
    status: an orphaned pool worker of a killed `run -p N` where nothing reaps it), or a
    process created after the attempt started (the pid was reused). psutil reads /proc."""
    import psutil  # here: only a running attempt on this host is ever looked up

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        created = process.create_time()
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OverflowError, ValueError):  # not ours to see, or not a pid: alive
        return False
    started = age_seconds(started_at)
    return started is not None and created > time.time() - started + _START_SLACK_S


def stall_bound(pace_s: float | None, floor: float) -> float:
    """Seconds without a journal event after which a live attempt is stalled: PACE_FACTOR times
    its pace (the longest gap between two of its rows so far), and never less than `floor`
    (`[workflow] stall_after`). Before its second row an attempt has no pace: the floor alone."""
    return floor if pace_s is None else max(floor, PACE_FACTOR * pace_s)


def is_stalled(mark: Mark, floor: float) -> bool:
    """True if the attempt `mark` describes has logged nothing in its journal for longer than
    `stall_bound` allows. Whether it is alive is `is_stale`'s question: a job is stalled only
    while it is not stale (`JobState.stalled`). An attempt whose progress is unknown (its
    journal unread) is not stalled."""
    age = age_seconds(mark.progress_at)
    return age is not None and age > stall_bound(mark.pace_s, floor)


@dataclass(frozen=True, slots=True)
class JobState:
    """A job's state (module docstring).

    `state`: one of JOB_STATES. `stale`: running, and its attempt is known dead (`execute` may
    resume it). `problem`: why a corrupt job cannot be read (one sentence naming the job).
    `mark`: the running attempt (None unless running); `is_stale(mark, seconds)` judges it again
    later, or with another bound. `binding`: the job's binding as the
    document holds it, or as its run's journal does when `recorded` is False (a first attempt
    that has not recorded it yet, or whose process died before it could). `last_pass`: the
    pass of `run` that started the job's last attempt (`begin_pass`; None when none did).
    """

    state: str
    stale: bool = False
    problem: str | None = None
    mark: Mark | None = None
    binding: Mapping[str, Any] | None = None
    recorded: bool = True
    stalled: bool = False
    last_pass: str | None = None

    @property
    def shown(self) -> str:
        """The state as every view names it: `stalled` or `stale` for a running job that is
        (a stale one's attempt is known dead: `execute` resumes it), else `state`."""
        return STALLED if self.stalled else STALE if self.stale else self.state


_UNBOUND_STATE = JobState(UNBOUND)


def job_state(
    job: Any,
    doc: Mapping[str, Any] | None = None,
    *,
    stale_after: float | None = None,
    stall_after: float | None = None,
) -> JobState:
    """The state of `job` (anything with `id` and `path`: a signac Job, an aexp.jobdoc.JobDir).

    `doc` is the job's document when the caller has read it already (else it is read here,
    not kept in aexp's document cache). `stale_after` is the age in seconds after which a
    silent attempt counts as dead, `stall_after` the least time without a journal event after
    which a live one is stalled (None: the project's `[workflow] stale_after` / `stall_after`,
    read from its signac.rc: SettingsError when that cannot be read). Never raises for a
    damaged document or journal: a damaged document is `corrupt`, a journal that cannot be
    read says nothing.
    """
    try:
        if doc is None:
            doc = peek_doc(job)
        binding = get_binding(job, doc)
    except BindingError as exc:
        return JobState(CORRUPT, problem=str(exc))
    recorded = binding is not None
    if binding is None:
        binding = pending_binding(job.path)
        if binding is None:
            return _UNBOUND_STATE
    state = binding["state"]
    where = doc.get("attempt")
    last_pass = where.get("pass_id") if where else None
    if state in (COMPLETED, FAILED, FINISHED):
        return JobState(state, binding=binding, recorded=recorded, last_pass=last_pass)
    path = journal_file(job.path, binding["run_id"])
    try:
        tail = read_tail(path, steps=False, limit=TAIL_BYTES, pace=True)
    except OSError:  # unreadable: the document's word stands
        tail = Tail()
    mark = unrecorded_attempt(tail, binding)
    if mark is None and state == RUNNING:
        mark = Mark.of_doc(doc).with_progress(tail)
    if mark is None:
        return JobState(state, binding=binding, recorded=recorded, last_pass=last_pass)
    if stale_after is None or stall_after is None:
        settings = _project_settings(job)
        stale_after = settings.stale_after if stale_after is None else stale_after
        stall_after = settings.stall_after if stall_after is None else stall_after
    stale = is_stale(mark, stale_after)
    stalled = not stale and not mark.ended and is_stalled(mark, stall_after)
    return JobState(
        RUNNING,
        stale=stale,
        mark=mark,
        binding=binding,
        recorded=recorded,
        stalled=stalled,
        last_pass=mark.pass_id if mark.pass_id is not None else last_pass,
    )


def unrecorded_attempt(tail: Tail, binding: Mapping[str, Any]) -> Mark | None:
    """The journal's last attempt if the document (its `binding`) has not recorded it: started
    after the last start the document records, or ended (its `finish` written) where the
    document still has it running or does not have it at all. None when the document is up to
    date with the journal."""
    number = tail.attempt
    if number is None or tail.opening is None:
        return None
    started = binding.get("attempts", 0)
    if tail.event == "finish":
        ended = started - 1 if binding["state"] == RUNNING else started
        return Mark.of_tail(tail) if number > ended else None
    if tail.in_flight and number > started:
        return Mark.of_tail(tail)
    return None


def _project_settings(job: Any) -> Any:
    from aexp.spec import project_settings

    return project_settings(job)


__all__ = [
    "CORRUPT",
    "JOB_STATES",
    "PACE_FACTOR",
    "SHOWN_STATES",
    "STALE",
    "STALLED",
    "TAIL_BYTES",
    "UNBOUND",
    "JobState",
    "Mark",
    "attempt_identity",
    "begin_pass",
    "current_pass",
    "is_stale",
    "is_stalled",
    "job_state",
    "process_gone",
    "stall_bound",
    "unrecorded_attempt",
]
