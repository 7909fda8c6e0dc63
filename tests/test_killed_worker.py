"""A pool worker of `run -p 2` that dies without returning (kill -9, the OOM killer, a crash in
native code) costs its own job's attempt, not the pass: the pass runs the other jobs, names the
job whose worker died, exits 1, and the next `run` resumes that job.

Before, flow's pool lost the dead worker's task and the pass waited for its result forever.
Real subprocesses on a real template project (the noop backend); the signals are sent to the
real pool workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import PYTHON, noop_template, run_cmd

LOST = re.compile(
    r"job ([0-9a-f]{32}): operation execute ended without a result: "
    r"its worker process (\d+) was killed by SIG"
)


def _project(base: Path) -> tuple[Path, dict[str, str], list[str]]:
    """Four unrun jobs of ~4 s each (8 epochs of 0.5 s) in a fresh template project."""
    root, env = noop_template(base)
    made = run_cmd(
        [PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E1", "--hypothesis", "H1",
         "--sp", "seed=0..3", "--sp", "epochs=8", "--sp", "epoch_seconds=0.5"],
        root, env, check=True,
    )  # fmt: skip
    return root, env, made.stdout.split()


@contextlib.contextmanager
def _pass(root: Path, env: dict[str, str], *args: str) -> Iterator[subprocess.Popen]:
    """`python project.py run -p 2 ARGS` running in its own session; killed if left running."""
    started = subprocess.Popen(
        [PYTHON, "project.py", "run", "-p", "2", *args], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        yield started
    finally:  # the pass and any worker it left (its own session): nothing outlives the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.pid, signal.SIGKILL)


def _states(root: Path, env: dict[str, str]) -> dict[str, str]:
    out = run_cmd([PYTHON, "-m", "aexp.cli", "runs", "--json"], root, env, check=True)
    return {row["job_id"]: row["state"] for row in json.loads(out.stdout)["jobs"]}


def _attempt_pid(root: Path, job: str) -> int | None:
    """The pid that the job's journal says runs its attempt (its last `resume_run`)."""
    pid = None
    for journal in (root / "workspace" / job / "tracker_log").glob("*/events.jsonl"):
        for line in journal.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "resume_run":
                pid = event.get("pid")
    return pid


def _workers_in_attempts(root: Path, ids: list[str], pass_pid: int, want: int) -> list[int]:
    """Wait until `want` pool workers of the pass each run an attempt; their pids."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = {child.pid for child in psutil.Process(pass_pid).children()}
        busy = [pid for pid in map(lambda j: _attempt_pid(root, j), ids) if pid in workers]
        if len(busy) >= want:
            return busy[:want]
        time.sleep(0.1)
    raise AssertionError("the pool's workers never started their attempts")


@pytest.mark.parametrize(
    ("signum", "victims"),
    [(signal.SIGKILL, 1), (signal.SIGSEGV, 1), (signal.SIGKILL, 2)],
    ids=["kill-9", "segfault", "both-workers-kill-9"],
)
def test_a_pass_outlives_its_killed_pool_worker_and_names_its_job(
    tmp_path: Path, signum: int, victims: int
) -> None:
    root, env, ids = _project(tmp_path)
    with _pass(root, env) as started:
        killed = _workers_in_attempts(root, ids, started.pid, victims)
        doomed = {job for job in ids if _attempt_pid(root, job) in killed}
        for pid in killed:
            psutil.Process(pid).send_signal(signum)
        out, err = started.communicate(timeout=90)  # it used to wait forever here
    said = out + err
    assert started.returncode == 1, said
    assert "Traceback" not in said, said
    named = {job: int(pid) for job, pid in LOST.findall(err)}
    assert set(named) == doomed, said
    assert set(named.values()) == set(killed), said
    states = _states(root, env)
    assert {job for job, state in states.items() if state != "finished"} == doomed, states
    # The others ran to the end in this pass; the summary counts them.
    assert f"run: {len(ids) - victims} finished" in out, said

    following = run_cmd([PYTHON, "project.py", "run", "-p", "2"], root, env, timeout=180)
    assert following.returncode == 0, following.stdout + following.stderr
    assert set(_states(root, env).values()) == {"finished"}
    for job in doomed:  # resumed, not started over: its second attempt, in the same run
        doc = json.loads((root / "workspace" / job / "signac_job_document.json").read_text())
        assert doc["tracker"]["attempts"] == 2, doc["tracker"]


def test_a_worker_killed_while_idle_loses_nothing(tmp_path: Path) -> None:
    """A worker killed while it waits for work held no operation: the pass runs every job to
    its end, names none, and exits 0. (flow's pool hung here: its idle worker held the lock of
    the queue every worker reads.)"""
    root, env = noop_template(tmp_path)
    short, long = (
        run_cmd(
            [PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E1", "--hypothesis", "H1",
             "--sp", f"seed={seed}", "--sp", f"epochs={epochs}", "--sp", "epoch_seconds=0.5"],
            root, env, check=True,
        ).stdout.split()[0]
        for seed, epochs in ((0, 2), (1, 16))
    )  # fmt: skip
    with _pass(root, env) as started:
        # The short job ends first; its worker then idles while the long one runs.
        (busy,) = _workers_in_attempts(root, [long], started.pid, 1)
        deadline = time.monotonic() + 60
        while _states(root, env)[short] != "finished":
            assert time.monotonic() < deadline, "the short job never finished"
            time.sleep(0.2)
        assert _states(root, env)[long] == "running"
        idle = [c.pid for c in psutil.Process(started.pid).children() if c.pid != busy]
        assert len(idle) == 1, idle
        psutil.Process(idle[0]).kill()
        out, err = started.communicate(timeout=90)
    assert started.returncode == 0, out + err
    assert not LOST.search(err), err
    assert "Traceback" not in out + err, out + err
    assert set(_states(root, env).values()) == {"finished"}


def _journal_events(root: Path, job: str) -> list[str]:
    events = []
    for journal in (root / "workspace" / job / "tracker_log").glob("*/events.jsonl"):
        events += [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    return events


def test_a_worker_killed_right_after_its_attempt_ended_lost_nothing(tmp_path: Path) -> None:
    """Killed once its attempt recorded its end (in its document), as it answers the pass or
    just after: the job is finished, so nothing is named and the pass exits 0."""
    root, env, ids = _project(tmp_path)
    with _pass(root, env, "-j", ids[0]) as started:
        (worker,) = _workers_in_attempts(root, ids[:1], started.pid, 1)
        deadline = time.monotonic() + 60
        document = root / "workspace" / ids[0] / "signac_job_document.json"
        while '"state": "finished"' not in document.read_text():
            assert time.monotonic() < deadline, "the attempt never finished"
            time.sleep(0.002)
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(worker).kill()
        out, err = started.communicate(timeout=90)
    assert started.returncode == 0, out + err
    assert not LOST.search(err), err
    assert _states(root, env)[ids[0]] == "finished"
    assert _journal_events(root, ids[0]).count("finish") == 1


def test_a_preempted_worker_takes_no_further_job_before_the_pass_ends(tmp_path: Path) -> None:
    """SIGTERM to one busy worker preempts its attempt and ends the pass (exit 143), the other
    worker's attempt preempted too; the preempted worker, ending, is given no other job (which it
    would leave running, unnamed, when it exits)."""
    root, env, ids = _project(tmp_path)
    with _pass(root, env) as started:
        first, _ = _workers_in_attempts(root, ids, started.pid, 2)
        psutil.Process(first).terminate()
        out, err = started.communicate(timeout=90)
    assert started.returncode == 128 + signal.SIGTERM, out + err
    assert "Traceback" not in out + err, out + err
    states = _states(root, env)
    assert sorted(states.values()).count("preempted") == 2, states
    assert "running" not in states.values(), states  # no attempt left behind by a dead worker
    following = run_cmd([PYTHON, "project.py", "run", "-p", "2"], root, env, timeout=180)
    assert following.returncode == 0, following.stdout + following.stderr
    assert set(_states(root, env).values()) == {"finished"}


def test_a_lost_job_is_named_even_when_the_pass_then_ends_on_a_signal(tmp_path: Path) -> None:
    root, env, ids = _project(tmp_path)
    with _pass(root, env) as started:
        killed, _ = _workers_in_attempts(root, ids, started.pid, 2)
        doomed = next(job for job in ids if _attempt_pid(root, job) == killed)
        psutil.Process(killed).kill()
        deadline = time.monotonic() + 30
        while _states(root, env)[doomed] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)  # `runs` shows a running attempt whose process is gone as stale
        time.sleep(1.0)  # the pass notices the lost worker
        started.terminate()
        out, err = started.communicate(timeout=90)
    assert started.returncode == 128 + signal.SIGTERM, out + err
    assert {job for job, _ in LOST.findall(err)} == {doomed}, err


@pytest.mark.parametrize("parallel", [[], ["-p", "2"]], ids=["serial", "-p 2"])
def test_run_with_a_timeout_stops_the_attempts_it_cuts_short_and_says_so(
    tmp_path: Path, parallel: list[str]
) -> None:
    """`run -t 1` on jobs of ~4 s: flow ends the pass at the first operation past its time. No
    traceback; the attempt cut short is stopped and recorded preempted (serially, flow killed
    only the shell around it, and the orphan ran on to its end, holding its job); nothing of
    the pass is left running; the next run finishes every job."""
    root, env, _ = _project(tmp_path)
    timed = subprocess.run(
        [PYTHON, "project.py", "run", *parallel, "-t", "1"], cwd=root, env=env,
        capture_output=True, text=True, timeout=120, start_new_session=True,
    )  # fmt: skip
    said = timed.stdout + timed.stderr
    assert timed.returncode == 1, said
    assert "Traceback" not in said, said
    assert said.rstrip().splitlines()[-1].startswith("error: the pass stopped there;"), said
    time.sleep(1.0)  # the attempts stopped have ended
    left = [p.pid for p in psutil.process_iter() if _in_dir(p, root)]
    assert not left, f"processes of the pass still running: {left}"
    states = _states(root, env)
    assert "preempted" in states.values(), states
    assert "running" not in states.values() and "finished" not in states.values(), states

    following = run_cmd([PYTHON, "project.py", "run", *parallel], root, env, timeout=180)
    assert following.returncode == 0, following.stdout + following.stderr
    assert set(_states(root, env).values()) == {"finished"}


def _in_dir(process: psutil.Process, root: Path) -> bool:
    try:
        return Path(process.cwd()) == root and process.pid != os.getpid()
    except psutil.Error:
        return False


def test_run_with_a_timeout_is_a_pass_like_any_other(tmp_path: Path) -> None:
    """`run -t 60` (a limit no job reaches), serially: a failing experiment fails its own job
    only, the others run, the summary counts them all; SIGTERM to `run` itself then preempts
    the attempt at work at once (flow's own `-t` ran each operation as a command outside the
    pass: a failure ended it in a traceback, the summary counted nothing, a SIGTERM waited for
    the operation to end)."""
    root, env, ids = _project(tmp_path)
    failing = run_cmd(
        [PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E1", "--hypothesis", "H1",
         "--sp", "seed=9", "--sp", "epochs=3", "--sp", "fail_at_epoch=1"],
        root, env, check=True,
    ).stdout.split()  # fmt: skip
    done = run_cmd(  # two jobs and the failing one; the other two are for the SIGTERM below
        [PYTHON, "project.py", "run", "-t", "60", "-j", *ids[:2], *failing], root, env, timeout=180
    )
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "Traceback" not in said, said
    assert done.stdout.splitlines()[-2].startswith("run: 2 finished, 1 failed"), said
    states = _states(root, env)
    assert [states[job] for job in [*ids[:2], *failing]] == ["finished", "finished", "failed"]

    timed = subprocess.Popen(
        [PYTHON, "project.py", "run", "-t", "60", "-j", *ids[2:]], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _attempt_pid(root, ids[2]) is None:
            assert time.monotonic() < deadline, "the attempt never started"
            time.sleep(0.05)
        time.sleep(0.5)
        timed.terminate()
        out, err = timed.communicate(timeout=30)  # at once, not after the experiment's 4 s
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(timed.pid, signal.SIGKILL)
    assert timed.returncode == 128 + signal.SIGTERM, out + err
    assert _states(root, env)[ids[2]] == "preempted"


def test_a_time_limit_longer_than_the_system_can_wait_at_once_still_runs_the_job(
    tmp_path: Path,
) -> None:
    """`-t 3000000` (~35 days: past poll(2)'s ~24.8 days) is a limit like any other, waited for
    in slices: the job runs to its end, exit 0 (it ended in an OverflowError traceback)."""
    root, env, ids = _project(tmp_path)
    done = run_cmd(
        [PYTHON, "project.py", "run", "-t", "3000000", "-j", ids[0]], root, env, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-2].startswith("run: 1 finished"), done.stdout
