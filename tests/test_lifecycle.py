"""`run_lifecycle`: one execution attempt of a job inside its bound run, and `finish_run`."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from test_trackers import read_events

from aexp import (
    BindingError,
    JobBusyError,
    NoopAdapter,
    bind_tracker,
    create_run,
    finish_run,
    get_binding,
    run_lifecycle,
)
from aexp.jobdoc import read_doc
from aexp.journal import journal_path
from aexp.state import job_state


def _job(condition: str = "full"):
    return create_run(
        experiment_id="E018", hypothesis_id="H012", statepoint={"condition": condition}
    )


def _bound(condition: str = "full"):
    job = _job(condition)
    binding = bind_tracker(job, NoopAdapter(), project="p")
    return job, journal_path(job.path, binding["run_id"])


def _ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset().total_seconds() == 0
    return parsed


def test_success_goes_running_then_complete(project):
    job, events = _bound()
    t0 = time.monotonic()
    with run_lifecycle(job) as run:
        # The attempt's start is in its run's journal at once; its document is written once,
        # at its end (or by its first heartbeat, a second in: docs/job-document.md).
        seen = job_state(job, stale_after=300)
        doc = read_doc(job, fresh=True)
        assert run.run_id == doc["tracker"]["run_id"]
        run.log({"loss": 1.0})
        run.log({"loss": 0.5, "acc": 0.75})
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    assert (seen.state, seen.stale, seen.mark.attempt, seen.mark.ours) == (
        "running",
        False,
        1,
        True,
    )
    assert doc["tracker"]["state"] == "bound" and "started_at" not in doc

    doc = job.doc()
    assert doc["status"] == "complete"
    opened = next(e for e in read_events(events) if e["event"] == "resume_run")
    assert 0 <= (_ts(opened["timestamp"]) - _ts(doc["started_at"])).total_seconds() < 1
    assert doc["attempt"] == {k: opened[k] for k in doc["attempt"]}
    assert _ts(doc["started_at"]) <= _ts(doc["ended_at"])
    assert _ts(doc["heartbeat_at"]) >= _ts(doc["started_at"])
    assert 0.2 <= doc["wallclock_s"] <= elapsed + 0.01
    tracker = doc["tracker"]
    assert (tracker["state"], tracker["exit_code"], tracker["error"]) == ("finished", 0, None)
    assert tracker["finished_at"] == doc["ended_at"]
    assert (tracker["attempts"], tracker["last_step"], tracker["closed"]) == (1, 1, True)
    assert tracker["summary"] == {"loss": 0.5, "acc": 0.75}
    log = read_events(events)
    assert [e["event"] for e in log] == ["init_run", "resume_run", "log", "log", "finish"]
    assert [e.get("step") for e in log if e["event"] == "log"] == [0, 1]
    assert (log[-1]["exit_code"], log[-1]["preempted"]) == (0, False)


def test_exception_is_recorded_and_reraised(project):
    job, events = _bound()
    with pytest.raises(ValueError, match="diverged at epoch 3") as info, run_lifecycle(job) as run:
        run.log({"loss": 1.0})
        raise ValueError("diverged at epoch 3")
    assert info.type is ValueError  # the experiment's own exception, not a wrapper
    doc = job.doc()
    assert doc["status"] == "failed"
    assert doc["ended_at"] is not None and doc["wallclock_s"] >= 0
    tracker = doc["tracker"]
    assert (tracker["state"], tracker["exit_code"]) == ("failed", 1)
    assert tracker["error"] == "ValueError: diverged at epoch 3"
    assert tracker["last_step"] == 0 and tracker["summary"] == {"loss": 1.0}
    error_log = Path(job.path, "error.log").read_text()
    assert "Traceback (most recent call last)" in error_log
    assert 'raise ValueError("diverged at epoch 3")' in error_log
    assert "attempt 1" in error_log
    last = read_events(events)[-1]
    assert (last["event"], last["exit_code"]) == ("finish", 1)
    (record,) = NoopAdapter().list_runs(project="p")
    assert (record.state, record.exit_code) == ("failed", 1)
    # finish_run keeps a failed run failed and records when it was closed.
    finished = finish_run(job)
    assert (finished["state"], finished["exit_code"]) == ("failed", 1)
    assert finished["finished_at"]


def test_heartbeat_is_refreshed_while_running(project):
    job, _ = _bound()
    with run_lifecycle(job, heartbeat_interval=0.05) as run:
        deadline = time.monotonic() + 5  # the first beat records the start in the document
        while "started_at" not in read_doc(job, fresh=True) and time.monotonic() < deadline:
            time.sleep(0.01)
        doc = read_doc(job, fresh=True)
        started = doc["started_at"]
        assert (doc["status"], doc["tracker"]["state"], doc["tracker"]["attempts"]) == (
            "running",
            "running",
            1,
        )
        assert doc["ended_at"] is None and doc["attempt"]["pid"] == os.getpid()
        run.log({"loss": 1.0})
        first_beat = doc["heartbeat_at"]
        deadline = time.monotonic() + 5
        # now_iso has one-second resolution: a refresh shows once the heartbeat moves past the
        # one first read (which may already be a second past started_at), and it mirrors the
        # step just logged into the binding.
        while time.monotonic() < deadline:
            doc = read_doc(job, fresh=True)
            if doc["heartbeat_at"] != first_beat and doc["tracker"]["last_step"] == 0:
                break
            time.sleep(0.02)
        assert doc["status"] == "running"
        assert _ts(doc["heartbeat_at"]) > _ts(first_beat) >= _ts(started)
        assert doc["tracker"]["last_step"] == 0
    assert job.doc["status"] == "complete"


def test_unbound_job_gets_the_bookkeeping_only(project):
    job = _job()
    with run_lifecycle(job) as run:
        assert run.run_id is None
        run.log({"loss": 0.1})  # nowhere to send it; no error
    doc = job.doc()
    assert doc["status"] == "complete" and "tracker" not in doc
    assert doc["wallclock_s"] >= 0


def test_an_attempt_closes_its_run_and_finish_run_changes_nothing_after_it(project):
    job, events = _bound()
    with pytest.raises(BindingError, match="has not ended"):
        finish_run(job)
    with run_lifecycle(job) as run:
        run.log({"loss": 0.1})
    first = get_binding(job)
    assert (first["state"], first["closed"]) == ("finished", True)
    assert _ts(first["finished_at"])
    before = Path(job.path, "signac_job_document.json").read_bytes()
    assert finish_run(job) == first  # idempotent: same timestamp, no second finish event
    assert Path(job.path, "signac_job_document.json").read_bytes() == before
    assert [e["event"] for e in read_events(events)].count("finish") == 1
    with pytest.raises(BindingError, match="already finished"), run_lifecycle(job):
        pass
    assert get_binding(job) == first


def test_a_completed_run_does_not_run_again(project):
    job, _ = _bound()
    with run_lifecycle(job):
        pass
    before = Path(job.path, "signac_job_document.json").read_bytes()
    with pytest.raises(BindingError, match="already finished"), run_lifecycle(job):
        pytest.fail("the body must not run")
    assert Path(job.path, "signac_job_document.json").read_bytes() == before


def test_a_job_running_elsewhere_is_refused(project):
    job, _ = _bound()
    with run_lifecycle(job, heartbeat_interval=0.05):
        with pytest.raises(JobBusyError, match="already executing elsewhere"), run_lifecycle(job):
            pytest.fail("the body must not run")
        assert job_state(job, stale_after=300).mark.attempt == 1
    assert job.doc["tracker"]["state"] == "finished"


def test_is_stale_recognises_dead_attempts_without_waiting(monkeypatch) -> None:
    import subprocess
    import sys

    from aexp.jobdoc import now_iso
    from aexp.state import attempt_identity, is_stale

    fresh = {"heartbeat_at": now_iso(), "attempt": attempt_identity()}
    assert not is_stale(fresh, 300), "this very process is alive"
    assert is_stale({"heartbeat_at": "2000-01-01T00:00:00+00:00"}, 300), "old heartbeat"
    assert is_stale({}, 300), "no heartbeat at all"

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = {**fresh, "attempt": {**fresh["attempt"], "pid": int(dead.stdout)}}
    assert is_stale(gone, 300), "its process is gone from this host"
    elsewhere = {**gone, "attempt": {**gone["attempt"], "host": "another-node"}}
    assert not is_stale(elsewhere, 300), "another host's process: only the heartbeat tells"

    requeued = {
        **elsewhere,
        "attempt": {**elsewhere["attempt"], "slurm_job_id": "42", "slurm_restart_count": "0"},
    }
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert is_stale(requeued, 300), "SLURM restarted the job the attempt ran in"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert not is_stale(requeued, 300), "same job, same restart: still running"


def test_a_damaged_checkpoint_is_treated_as_absent(project, capsys) -> None:
    import aexp
    from aexp.checkpoint import SLOTS

    job = aexp.create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"seed": 0})
    with aexp.run_lifecycle(job) as tracker:
        tracker.checkpoint({"epoch": 3})
        tracker.checkpoint({"epoch": 4})
        assert tracker.load_checkpoint() == {"epoch": 4}
        for name in SLOTS:  # both slots torn by a power loss
            Path(job.path, name).write_text('{"seq": 1, "step": 4, "sta')
        assert tracker.load_checkpoint() is None
        tracker.checkpoint({"epoch": 0})  # starting over writes a fresh, readable checkpoint
        assert tracker.load_checkpoint() == {"epoch": 0}
    assert "no intact checkpoint" in capsys.readouterr().err


def test_checkpoints_continue_across_attempts(project) -> None:
    import aexp
    from aexp.checkpoint import read_checkpoint

    job, _ = _bound()
    with pytest.raises(aexp.Preempted), aexp.run_lifecycle(job) as tracker:
        tracker.log({"loss": 1.0})
        tracker.checkpoint({"epoch": 1})
        raise aexp.Preempted(signal.SIGTERM)
    with aexp.run_lifecycle(job) as tracker:
        # No load_checkpoint first: the new attempt still writes after the stored checkpoint.
        tracker.log({"loss": 0.5})
        tracker.checkpoint({"epoch": 2})
    stored = read_checkpoint(job.path)
    assert (stored.seq, stored.step, stored.state) == (1, 2, {"epoch": 2})


_KILLED_ATTEMPT = """
import os, signal, sys
import aexp
job = aexp.open_project().open_job(id=sys.argv[1])
with aexp.run_lifecycle(job) as tracker:
    for step, loss in enumerate(sys.argv[2:]):
        tracker.log({"loss": float(loss), "epoch": step}, step=step)
    os.kill(os.getpid(), signal.SIGKILL)  # killed before its end is recorded
"""


@pytest.mark.parametrize(
    ("logged", "again", "expected"),
    [
        # the next attempt re-does the last step only: the summary is the journal's
        (["1.0", "0.5", "0.25"], [(2, 0.9)], {"loss": 0.25, "epoch": 2}),
        # the next attempt adds steps: they are the latest
        (["1.0", "0.5"], [(2, 0.3), (3, 0.2)], {"loss": 0.2, "epoch": 3}),
        # the next attempt logs nothing
        (["1.0"], [], {"loss": 1.0, "epoch": 0}),
    ],
)
def test_a_finished_runs_summary_covers_every_attempt_a_kill_cut_short(
    project, logged, again, expected
) -> None:
    import subprocess
    import sys

    from aexp.journal import read_journal

    job, path = _bound()
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_ATTEMPT, job.id, *logged], cwd=project.path, check=False
    )
    assert done.returncode == -signal.SIGKILL
    with run_lifecycle(job) as tracker:
        for step, loss in again:
            tracker.log({"loss": loss, "epoch": step}, step=step)
    binding = get_binding(job)
    assert binding["state"] == "finished"
    assert binding["summary"] == expected == read_journal(path).summary
