"""The attempt as one object (aexp.attempt): each refusal on its own, each way an earlier attempt
is found (in the document or in the journal alone), the workflow's `can_execute` for every
state, and what one attempt reads and writes (counted, so that the count cannot creep back)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_trackers import read_events

from aexp import NoopAdapter, bind_tracker, create_run, get_binding, run_lifecycle
from aexp.attempt import AttemptEnded, NothingToRun
from aexp.errors import BindingError, JobBusyError
from aexp.jobdoc import now_iso, read_doc, update_doc
from aexp.journal import JournalWriter, journal_path
from aexp.settings import Settings
from aexp.state import attempt_identity, job_state
from aexp.workflow import can_execute, execute, execute_ended
from aexp.workflow.conditions import snapshot

DOC = "signac_job_document.json"
ELSEWHERE = {"host": "node-17", "pid": 4242, "slurm_job_id": None, "slurm_restart_count": "0"}


def _job(seed: int = 0, *, bound: bool = True):
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"seed": seed})
    if bound:
        bind_tracker(job, NoopAdapter(), project="p")
    return job


def _set(job, doc: dict | None = None, **tracker) -> None:
    """Give the job's document the fields an attempt would have written."""
    update_doc(job, lambda d: {**(doc or {}), "tracker": {**d["tracker"], **tracker}})


def _journal(job) -> Path:
    return journal_path(job.path, get_binding(job)["run_id"])


def _append(job, event: str, **fields) -> None:
    """An event in the job's journal, as another process's attempt writes it."""
    writer = JournalWriter(_journal(job))
    try:
        writer.event(event, **fields)
    finally:
        writer.close()


def _files(job) -> dict[str, bytes]:
    return {
        str(p.relative_to(job.path)): p.read_bytes()
        for p in sorted(Path(job.path).rglob("*"))
        if p.is_file() and p.name != ".aexp.claim"
    }


def _refused(job, error: type[Exception], match: str) -> None:
    """`run_lifecycle` refuses the job before its body runs, and nothing of the job changes."""
    before = _files(job)
    with pytest.raises(error, match=match), run_lifecycle(job):
        pytest.fail("the body must not run")
    assert _files(job) == before


# -- each refusal on its own ----------------------------------------------------------------------
def test_a_failed_run_is_refused(project) -> None:
    job = _job()
    _set(job, {"status": "failed"}, state="failed", exit_code=1, attempts=1, finished_at=now_iso())
    _refused(job, NothingToRun, f"failed; re-arm it first with: aexp rearm {job.id}")


def test_a_completed_run_is_refused(project) -> None:
    job = _job()
    _set(job, {"status": "complete"}, state="completed", exit_code=0, attempts=1)
    _refused(job, NothingToRun, "already completed")


def test_a_finished_run_is_refused(project) -> None:
    job = _job()
    _set(job, {"status": "complete"}, state="finished", exit_code=0, attempts=1)
    _refused(job, NothingToRun, "already finished")


def test_a_corrupt_document_is_refused(project) -> None:
    job = _job()
    _set(job, attempts="two")
    _refused(job, BindingError, r"job.doc\['tracker'\]\['attempts'\] is 'two'")


def test_a_run_the_document_records_running_elsewhere_is_refused(project) -> None:
    job = _job()
    doc = {"status": "running", "heartbeat_at": now_iso(), "attempt": ELSEWHERE}
    _set(job, doc, state="running", attempts=1)
    _refused(job, JobBusyError, "already executing elsewhere")


def test_a_run_only_the_journal_shows_running_elsewhere_is_refused(project) -> None:
    # An attempt in its first second: its start is in the run's journal alone.
    job = _job()
    _append(job, "resume_run", attempt=1, **ELSEWHERE)
    assert read_doc(job)["tracker"]["state"] == "bound"
    _refused(job, JobBusyError, "already executing elsewhere")


def test_a_job_another_process_holds_is_refused(project) -> None:
    job = _job()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from aexp.jobdoc import JobDir; from aexp.joblock import job_claim\n"
            f"with job_claim(JobDir({job.id!r}, {job.path!r})):\n"
            "    print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        _refused(job, JobBusyError, f"being worked on by another process \\(pid {holder.pid}")
    finally:
        holder.communicate("")


# -- what an earlier attempt left: resumed, or recorded -------------------------------------------
def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)  # fmt: skip


def test_a_recorded_attempt_whose_process_died_is_resumed(project) -> None:
    job = _job()
    dead = {**attempt_identity(), "pid": _dead_pid()}
    _append(job, "resume_run", attempt=1, **dead)
    _append(job, "log", metrics={"loss": 1.0}, step=0)
    _set(job, {"status": "running", "heartbeat_at": now_iso(), "attempt": dead}, state="running",
         attempts=1)  # fmt: skip
    assert job_state(job, stale_after=300).stale
    with run_lifecycle(job) as tracker:
        assert (tracker.attempt, tracker.step) == (2, 1)
        tracker.log({"loss": 0.5})
    binding = get_binding(job)
    assert (binding["state"], binding["attempts"], binding["last_step"]) == ("finished", 2, 1)


def test_an_attempt_only_the_journal_knows_whose_process_died_is_resumed(project) -> None:
    job = _job()
    _append(job, "resume_run", attempt=1, **{**attempt_identity(), "pid": _dead_pid()})
    _append(job, "log", metrics={"loss": 1.0}, step=0)
    seen = job_state(job, stale_after=300)
    assert (seen.state, seen.stale, seen.mark.attempt) == ("running", True, 1)
    with run_lifecycle(job) as tracker:
        assert (tracker.attempt, tracker.step) == (2, 1)
    events = read_events(_journal(job))
    assert [e["attempt"] for e in events if e["event"] == "resume_run"] == [1, 2]
    assert get_binding(job)["attempts"] == 2


def test_an_ended_attempt_only_the_journal_knows_is_recorded_not_run_again(project) -> None:
    job = _job()
    _append(job, "resume_run", attempt=1, **ELSEWHERE)
    _append(job, "log", metrics={"loss": 0.25}, step=0)
    _append(job, "finish", exit_code=0, preempted=False, attempt=1)
    with pytest.raises(AttemptEnded, match="had ended; recorded it now"), run_lifecycle(job):
        pytest.fail("the body must not run")
    binding = get_binding(job)
    assert (binding["state"], binding["attempts"], binding["last_step"]) == ("finished", 1, 0)
    assert binding["summary"] == {"loss": 0.25} and binding["finished_at"]


def test_a_preempted_attempt_only_the_journal_knows_is_recorded_and_resumed(project) -> None:
    job = _job()
    _append(job, "resume_run", attempt=1, **ELSEWHERE)
    _append(job, "log", metrics={"loss": 0.25}, step=0)
    _append(job, "finish", exit_code=138, preempted=True, attempt=1)
    with run_lifecycle(job) as tracker:
        assert (tracker.attempt, tracker.step) == (2, 1)
    assert get_binding(job)["attempts"] == 2


# -- can_execute, each state on its own -----------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "eligible"),
    [
        ("unbound", True),
        ("bound", True),
        ("preempted", True),
        ("running elsewhere", False),
        ("running in the journal only", False),
        ("running, its process gone", True),
        ("failed", False),
        ("finished", False),
        ("completed", False),
        ("corrupt", False),
    ],
)
def test_can_execute(project, state: str, eligible: bool) -> None:
    job = _job(bound=state != "unbound")
    recorded = {"status": "running", "heartbeat_at": now_iso(), "attempt": ELSEWHERE}
    if state == "preempted":
        _set(job, {"status": "preempted"}, state="preempted", attempts=1, exit_code=138)
    elif state == "running elsewhere":
        _set(job, recorded, state="running", attempts=1)
    elif state == "running in the journal only":
        _append(job, "resume_run", attempt=1, **ELSEWHERE)
    elif state == "running, its process gone":
        gone = {**recorded, "attempt": {**attempt_identity(), "pid": _dead_pid()}}
        _set(job, gone, state="running", attempts=1)
    elif state == "failed":
        _set(job, state="failed", attempts=1, exit_code=1, finished_at=now_iso())
    elif state in ("finished", "completed"):
        _set(job, state=state, attempts=1, exit_code=0, finished_at=now_iso())
    elif state == "corrupt":
        _set(job, exit_code="1")
    with snapshot():  # as `status` asks it
        assert can_execute(job, 300) is eligible
    assert can_execute(job, 300) is eligible  # as `run` asks it


@pytest.mark.parametrize(
    ("state", "ended"),
    [("bound", False), ("preempted", False), ("running", False), ("failed", True),
     ("finished", True), ("completed", True)],
)  # fmt: skip
def test_execute_ended_holds_for_a_failed_run(project, state: str, ended: bool) -> None:
    """`execute`'s postcondition: a failed run has ended (flow never runs `execute` on it), as
    a finished one has; a preempted or running one has not."""
    job = _job()
    if state != "bound":
        _set(job, {"heartbeat_at": now_iso(), "attempt": ELSEWHERE}, state=state, attempts=1)
    assert execute_ended(job) is ended


# -- what one attempt reads and writes ------------------------------------------------------------
class FileCalls:
    """Counts the file-system calls on one job's files while it is active: document reads
    (opens of signac_job_document.json), document writes (renames onto it), locks taken
    (flock), directories made, and opens of the run's journal."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, job) -> None:
        self.job_path = job.path
        self.doc = os.path.join(job.path, DOC)
        self.counts = dict.fromkeys(("reads", "writes", "locks", "mkdirs", "journal"), 0)
        self.active = False
        real_open, real_replace = os.open, os.replace
        real_mkdir, real_flock = os.mkdir, fcntl.flock

        def counting_open(path, flags, *args, **kwargs):
            if self.active and os.fspath(path) == self.doc:
                self.counts["reads"] += 1
            elif self.active and os.fspath(path).endswith("events.jsonl"):
                self.counts["journal"] += 1
            return real_open(path, flags, *args, **kwargs)

        def counting_replace(src, dst, *args, **kwargs):
            if self.active and os.fspath(dst) == self.doc:
                self.counts["writes"] += 1
            return real_replace(src, dst, *args, **kwargs)

        def counting_mkdir(path, *args, **kwargs):
            if self.active and os.fspath(path).startswith(self.job_path):
                self.counts["mkdirs"] += 1
            return real_mkdir(path, *args, **kwargs)

        def counting_flock(fd, operation):
            if self.active and operation & fcntl.LOCK_EX:
                self.counts["locks"] += 1
            return real_flock(fd, operation)

        monkeypatch.setattr(os, "open", counting_open)
        monkeypatch.setattr(os, "replace", counting_replace)
        monkeypatch.setattr(os, "mkdir", counting_mkdir)
        monkeypatch.setattr(fcntl, "flock", counting_flock)

    def during(self, call, *args) -> dict[str, int]:
        self.active = True
        try:
            call(*args)
        finally:
            self.active = False
        return dict(self.counts)


def _trivial(job, tracker) -> None:
    state = tracker.load_checkpoint() or {"row": 0}
    for row in range(state["row"], 5):
        tracker.log({"loss": 1.0 / (row + 1)})
    tracker.checkpoint({"row": 5})


def test_one_attempt_reads_its_document_once_and_writes_it_once(project, monkeypatch) -> None:
    """A new job through the workflow's `execute` (as `run` does it: its conditions asked
    first): the attempt binds it, runs, and records everything in one document write. One
    read, at the start under the job's claim: the write goes on top of it (the file held open
    shows no other write came between). One lock for the claim, one for the write; the
    journal's two directories made once, its file opened once."""
    job = _job(bound=False)
    settings = Settings(path=None, backend="noop", backends=("noop",), heartbeat_interval=30)
    assert can_execute(job, settings.stale_after)  # what flow asks first (and caches)
    calls = FileCalls(monkeypatch, job)
    counts = calls.during(execute, job, _trivial, settings)
    assert counts == {"reads": 1, "writes": 1, "locks": 2, "mkdirs": 2, "journal": 1}, counts
    binding = get_binding(job)
    assert (binding["state"], binding["attempts"], binding["last_step"]) == ("finished", 1, 4)


def test_a_resumed_attempt_reads_its_document_once_and_writes_it_once(project, monkeypatch) -> None:
    job = _job()
    _set(job, {"status": "preempted"}, state="preempted", attempts=1, exit_code=138)
    settings = Settings(path=None, backend="noop", backends=("noop",), heartbeat_interval=30)
    assert can_execute(job, settings.stale_after)
    calls = FileCalls(monkeypatch, job)
    counts = calls.during(execute, job, _trivial, settings)
    assert counts == {"reads": 1, "writes": 1, "locks": 2, "mkdirs": 0, "journal": 1}, counts
    assert get_binding(job)["attempts"] == 2


def test_a_write_between_the_attempts_read_and_its_end_is_kept(project) -> None:
    """The end is written on top of the attempt's one read only while the document is unchanged:
    another process's write in between (here a key of the user's, as `update_doc` writes it) is
    read again under the lock and kept."""
    job = _job()
    with run_lifecycle(job) as tracker:
        tracker.log({"loss": 1.0})
        update_doc(job, lambda doc: {"note": "written meanwhile"})
    doc = read_doc(job, fresh=True)
    assert doc["note"] == "written meanwhile" and doc["tracker"]["state"] == "finished"


def test_a_longer_attempt_is_in_its_document_from_its_first_second(project) -> None:
    """The first heartbeat records the attempt's start in the document (aexp.attempt's
    FIRST_RECORD_S): status and the runs table need no journal for a job that runs longer."""
    import time

    from aexp.attempt import FIRST_RECORD_S

    job = _job()
    with run_lifecycle(job, heartbeat_interval=30):
        deadline = time.monotonic() + FIRST_RECORD_S + 5
        while read_doc(job, fresh=True).get("status") != "running":
            assert time.monotonic() < deadline, "the start was never recorded"
            time.sleep(0.05)
        doc = read_doc(job, fresh=True)
        assert (doc["tracker"]["state"], doc["tracker"]["attempts"]) == ("running", 1)
        assert doc["attempt"] == attempt_identity() and doc["ended_at"] is None
    assert read_doc(job, fresh=True)["status"] == "complete"


# -- a first attempt that binds the job: its binding is in the journal first ---------------------
_FIRST_ATTEMPT = """
import sys, time
from aexp import NoopAdapter, open_project, run_lifecycle
from aexp.binding import adapters_of, new_binding
job = open_project().open_job(id=sys.argv[1])
bind = lambda spec: new_binding(job, adapters_of(NoopAdapter()), project="p", offline=True,
                                tags=(), notes=None, spec=spec)
with run_lifecycle(job, bind=bind) as tracker:
    tracker.log({"loss": 1.0})
    print(tracker.run_id, flush=True)
    time.sleep(60)
"""


def _killed_first_attempt(job) -> str:
    """The run id of a first attempt of `job` (unbound) killed within its first second."""
    child = subprocess.Popen(
        [sys.executable, "-c", _FIRST_ATTEMPT, job.id], stdout=subprocess.PIPE, text=True
    )
    try:
        run_id = child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait()
    assert run_id, "the first attempt never started"
    return run_id


def test_a_first_attempt_killed_before_its_record_is_resumed_in_its_own_run(project) -> None:
    job = _job(bound=False)
    run_id = _killed_first_attempt(job)
    assert "tracker" not in read_doc(job, fresh=True), "killed before its first record"
    seen = job_state(job, stale_after=300)
    assert (seen.state, seen.stale, seen.recorded, seen.binding["run_id"]) == (
        "running",
        True,
        False,
        run_id,
    )

    def second_binding(spec):
        raise AssertionError("the job has its run: no second binding")

    with run_lifecycle(job, bind=second_binding) as tracker:
        assert (tracker.run_id, tracker.attempt, tracker.step) == (run_id, 2, 1)
    binding = get_binding(job)
    assert (binding["run_id"], binding["attempts"], binding["state"]) == (run_id, 2, "finished")
    assert len(list(Path(job.path, "tracker_log").iterdir())) == 1, "one run, not two"


def test_bind_tracker_takes_the_run_a_killed_first_attempt_bound(project) -> None:
    job = _job(bound=False)
    run_id = _killed_first_attempt(job)
    binding = bind_tracker(job, NoopAdapter(), project="p")
    assert binding["run_id"] == run_id and get_binding(job)["run_id"] == run_id
    seen = job_state(job, stale_after=300)  # the document has the binding, the journal the start
    assert (seen.state, seen.stale, seen.recorded, seen.mark.attempt) == ("running", True, True, 1)
