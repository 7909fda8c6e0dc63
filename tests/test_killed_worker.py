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
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from conftest import PYTHON, copy_template, hermetic_env, run_cmd, set_rc

LOST = re.compile(
    r"job ([0-9a-f]{32}): operation execute ended without a result: "
    r"its worker process (\d+) was killed by SIG"
)


def _project(base: Path) -> tuple[Path, dict[str, str], list[str]]:
    """Four unrun jobs of ~4 s each (8 epochs of 0.5 s) in a fresh template project."""
    root = copy_template(base / "project")
    env = hermetic_env(base)
    set_rc(root, "tracker", "backend", "noop")
    made = run_cmd(
        [PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E1", "--hypothesis", "H1",
         "--sp", "seed=0..3", "--sp", "epochs=8", "--sp", "epoch_seconds=0.5"],
        root, env, check=True,
    )  # fmt: skip
    return root, env, made.stdout.split()


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
    started = subprocess.Popen(
        [PYTHON, "project.py", "run", "-p", "2"], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        killed = _workers_in_attempts(root, ids, started.pid, victims)
        doomed = {job for job in ids if _attempt_pid(root, job) in killed}
        for pid in killed:
            psutil.Process(pid).send_signal(signum)
        out, err = started.communicate(timeout=90)  # it used to wait forever here
    finally:
        with contextlib.suppress(ProcessLookupError):
            started.kill()
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
    root = copy_template(tmp_path / "project")
    env = hermetic_env(tmp_path)
    set_rc(root, "tracker", "backend", "noop")
    short, long = (
        run_cmd(
            [PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E1", "--hypothesis", "H1",
             "--sp", f"seed={seed}", "--sp", f"epochs={epochs}", "--sp", "epoch_seconds=0.5"],
            root, env, check=True,
        ).stdout.split()[0]
        for seed, epochs in ((0, 2), (1, 16))
    )  # fmt: skip
    started = subprocess.Popen(
        [PYTHON, "project.py", "run", "-p", "2"], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
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
    finally:
        with contextlib.suppress(ProcessLookupError):
            started.kill()
    assert started.returncode == 0, out + err
    assert not LOST.search(err), err
    assert "Traceback" not in out + err, out + err
    assert set(_states(root, env).values()) == {"finished"}
