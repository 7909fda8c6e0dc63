"""Stalled by progress: a running job whose journal stops while its heartbeat beats.

The state function (aexp.state.job_state) judges it from the journal's own timestamps: the
bound is 5 x the longest gap between two rows of the attempt (its start-up not counted), at
least `[workflow] stall_after`. `status`, `aexp runs` (table and JSON) show it; with
`[workflow] on_stall = preempt` the attempt is preempted and the next run resumes it from its
checkpoint, and one stuck where no signal handler runs is ended from its heartbeat thread.
Real processes and a real template copy; the SLURM side is in tests/test_slurm_scale.py.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc

from aexp import NoopAdapter, bind_tracker, create_run, get_binding
from aexp.jobdoc import update_doc
from aexp.journal import journal_path
from aexp.journal.tail import PACE_ROWS
from aexp.state import PACE_FACTOR, job_state, stall_bound

ELSEWHERE = {"host": "node-17", "pid": 4242, "slurm_job_id": None, "slurm_restart_count": "0"}
AEXP = str(Path(PYTHON).parent / "aexp")


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _running(opened_ago: float, rows_ago: list[float], heartbeat_ago: float = 0.5):
    """A job whose attempt 1 runs on another host: opened `opened_ago` s ago, rows logged at
    `rows_ago` (seconds ago, oldest first), its document's heartbeat `heartbeat_ago` s old."""
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"rows": rows_ago})
    bind_tracker(job, NoopAdapter(), project="p")
    lines = [{"timestamp": _ago(opened_ago), "event": "resume_run", "attempt": 1, **ELSEWHERE}]
    lines += [
        {"timestamp": _ago(age), "event": "log", "metrics": {"x": i}, "step": i}
        for i, age in enumerate(rows_ago)
    ]
    with open(journal_path(job.path, get_binding(job)["run_id"]), "a") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    state = {"status": "running", "attempt": ELSEWHERE, "started_at": _ago(opened_ago)}
    state["heartbeat_at"] = _ago(heartbeat_ago)
    update_doc(job, lambda d: {**state, "tracker": {**d["tracker"], "state": "running",
                                                    "attempts": 1}})  # fmt: skip
    return job


@pytest.mark.parametrize(
    ("opened", "rows", "stalled"),
    [
        (5, [], False),  # starting up, within the floor (10 s)
        (20, [], True),  # nothing logged for longer than the floor
        (25, [20], True),  # one row: no pace yet, the floor alone
        (9, [8, 7.5, 7], False),  # a fast pace, but silent for less than the floor
        (40, [32, 31, 30], True),  # a 1 s pace, silent 30 s: bound max(10, 5)
        (130, [120, 90, 60], False),  # a 30 s pace, silent 60 s: bound 150
        (270, [260, 230, 200], True),  # the same pace, silent 200 s
        (300, [100, 99, 98], True),  # a long start-up is not pace: bound 10, not 1000
    ],
)
def test_a_running_job_is_stalled_when_its_journal_is_silent_past_its_own_pace(
    project, opened: float, rows: list[float], stalled: bool
) -> None:
    job = _running(opened, rows)
    seen = job_state(job, stale_after=300, stall_after=10)
    assert seen.state == "running" and not seen.stale
    assert seen.stalled is stalled, (seen.mark.progress_at, seen.mark.pace_s)
    assert seen.shown == ("stalled" if stalled else "running")
    if len(rows) > 1:  # the pace measured is the longest gap between rows
        gaps = [a - b for a, b in itertools.pairwise(rows)]
        assert seen.mark.pace_s == pytest.approx(max(gaps), abs=0.01)
        bound = stall_bound(seen.mark.pace_s, 10)
        assert bound == pytest.approx(max(10, PACE_FACTOR * max(gaps)), abs=0.1)


@pytest.mark.parametrize(("recent", "stalled"), [(PACE_ROWS - 1, False), (PACE_ROWS, True)])
def test_status_reads_the_pace_of_the_last_pace_rows_rows(
    project, recent: int, stalled: bool
) -> None:
    # A slow gap (about 47 s: a bound of about 235 s), then `recent` rows 0.1 s apart, then 40 s
    # of silence: the slow gap counts while it lies among the last PACE_ROWS rows, not after.
    rows = [100.0] + [40.0 + 0.1 * (recent - 1 - i) for i in range(recent)]
    seen = job_state(_running(120, rows), stale_after=300, stall_after=10)
    assert seen.stalled is stalled, seen.mark.pace_s
    expected = 0.1 if stalled else rows[0] - rows[1]
    assert seen.mark.pace_s == pytest.approx(expected, abs=0.01)


def test_a_dead_attempt_is_stale_not_stalled(project) -> None:
    job = _running(1000, [990, 989], heartbeat_ago=400)
    seen = job_state(job, stale_after=300, stall_after=10)
    assert seen.stale and not seen.stalled and seen.shown == "stale"


def test_an_attempt_whose_end_is_in_its_journal_is_not_stalled(project) -> None:
    job = _running(100, [90, 80])
    with open(journal_path(job.path, get_binding(job)["run_id"]), "a") as fh:
        fh.write(json.dumps({"timestamp": _ago(70), "event": "finish", "exit_code": 0,
                             "preempted": False, "attempt": 1}) + "\n")  # fmt: skip
    seen = job_state(job, stale_after=300, stall_after=10)
    assert not seen.stalled


def test_aexp_runs_shows_a_stalled_job_in_its_table_and_its_json(project) -> None:
    Path(project.path, "signac.rc").write_text("[workflow]\nstall_after = 10\n")
    stalled, moving = _running(60, [50, 49]), _running(5, [2, 1])
    table = run_cmd([AEXP, "runs"], cwd=Path(project.path), check=True).stdout
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert "stalled" in rows[stalled.id] and "running" in rows[moving.id], table
    doc = json.loads(run_cmd([AEXP, "runs", "--json"], cwd=Path(project.path), check=True).stdout)
    jobs = {j["job_id"]: j for j in doc["jobs"]}
    assert jobs[stalled.id]["state"] == "running" and jobs[stalled.id]["stalled"] is True
    assert jobs[moving.id]["stalled"] is False


# -- the template, for real -----------------------------------------------------------------
def _template(root: Path, **workflow: str) -> None:
    set_rc(root, "tracker", "backend", "noop")
    set_rc(root, "workflow", "heartbeat_interval", "1")
    for key, value in workflow.items():
        set_rc(root, "workflow", key, value)


def _events(job) -> list[dict]:
    path = journal_path(job.path, get_binding(job)["run_id"])
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_status_labels_a_hung_job_stalled_within_its_bound_and_stale_once_it_is_dead(
    template: Path,
) -> None:
    _template(template, stall_after="3")
    hangs = {"epochs": 6, "epoch_seconds": 0.2, "hang_at_epoch": 2}
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint=hangs)
    run = subprocess.Popen(
        [PYTHON, "project.py", "run"], cwd=template, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = run_cmd([PYTHON, "project.py", "status", "-d"], cwd=template).stdout
            row = next((x for x in status.splitlines() if x.startswith(job.id)), "")
            if "stalled" in row:
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"never labelled stalled:\n{status}")
        assert "running" in row and "stale," not in row, row
        rows = [e for e in _events(job) if e["event"] == "log"]
        assert [r["step"] for r in rows] == [0, 1], "it hung at epoch 2"
        silent = (datetime.now(UTC) - datetime.fromisoformat(rows[-1]["timestamp"])).total_seconds()
        print(f"labelled stalled {silent:.1f} s after its last row (bound 3 s)")
        assert 3 <= silent <= 3 + 6, silent
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    status = run_cmd([PYTHON, "project.py", "status", "-d"], cwd=template).stdout
    row = next(x for x in status.splitlines() if x.startswith(job.id))
    assert "stale" in row and "stalled" not in row, "its process is gone: stale, not stalled"


def test_on_stall_preempt_stops_a_hung_attempt_and_the_next_run_resumes_it(
    template: Path,
) -> None:
    _template(template, stall_after="3", on_stall="preempt")
    hangs = {"epochs": 5, "epoch_seconds": 0.2, "hang_at_epoch": 2}
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint=hangs)
    first = run_cmd([PYTHON, "project.py", "run"], cwd=template, timeout=60)
    assert first.returncode == 0, first.stderr  # its own preemption: the pass ends as usual
    assert "run: 0 finished, 0 failed, 1 preempted" in first.stdout, first.stdout
    assert "stalled: its journal logged nothing for" in first.stderr
    binding = get_binding(job)
    assert binding["state"] == "preempted" and binding["error"].startswith("stalled:")
    finish = [e for e in _events(job) if e["event"] == "finish"]
    assert finish[-1]["stalled"] is True and finish[-1]["exit_code"] == 138

    again = run_cmd([PYTHON, "project.py", "run"], cwd=template, timeout=60, check=True)
    assert "1 finished" in again.stdout
    rows = [e for e in _events(job) if e["event"] == "log"]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4], "one continuous step axis"
    assert [r["metrics"]["epoch"] for r in rows] == [0, 1, 2, 3, 4], "resumed at its checkpoint"
    assert get_binding(job)["attempts"] == 2


# An experiment stuck where no Python signal handler runs: its main thread blocks the signals
# (so they go to another thread) and waits on a lock, as a hung collective waits in C.
STUCK = """\
import signal
import threading


def experiment(job, tracker):
    state = tracker.load_checkpoint() or {"epoch": 0}
    for epoch in range(state["epoch"], 4):
        tracker.log({"epoch": epoch}, step=epoch)
        tracker.checkpoint({"epoch": epoch + 1})
        if epoch == 1 and tracker.attempt == 1:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
            threading.Event().wait()
"""


def test_an_attempt_stuck_where_no_handler_runs_is_ended_and_resumed(template: Path) -> None:
    from aexp.stallwatch import GRACE_MIN_S

    _template(template, stall_after="2", on_stall="preempt")
    (template / "experiment.py").write_text(STUCK)
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"stuck": True})
    t0 = time.monotonic()
    first = run_cmd([PYTHON, "project.py", "run"], cwd=template, timeout=90)
    took = time.monotonic() - t0
    assert first.returncode == 128 + signal.SIGUSR1, first.stderr
    assert f"not stopped {GRACE_MIN_S:.0f} s after SIGUSR1; ending its process" in first.stderr
    assert took < 2 + GRACE_MIN_S + 15, took
    assert job_state(job, stale_after=300, stall_after=2).stale, "its process is gone"
    run_cmd([PYTHON, "project.py", "run"], cwd=template, timeout=60, check=True)
    rows = [e for e in _events(job) if e["event"] == "log"]
    assert [r["metrics"]["epoch"] for r in rows] == [0, 1, 2, 3], "resumed at its checkpoint"
    assert get_binding(job)["state"] == "finished" and get_binding(job)["attempts"] == 2
