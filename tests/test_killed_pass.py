"""A killed pass leaves nothing that blocks the next one silently: kill -9 of
`python project.py run -p 2` at random moments, then one more pass; that pass runs every job
the killed one left unfinished, or names it with the live process that holds it (a pool worker
of the killed pass, orphaned but still running its experiment).

Each trial kills either the pass's process alone (what the OOM killer does: its pool's workers
live on) or its whole process group (a node's processes gone at once), at a random moment.
Real subprocesses on a real template project (the noop backend: no network, no tracker's own
timing), many trials in bounded time. AEXP_KILL_SEED repeats a failing draw.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import PYTHON, copy_template, hermetic_env, run_cmd, set_rc

TRIALS = 8
BUDGET = 240.0  # seconds for all trials: stop drawing new ones after it
HELD = re.compile(r"([0-9a-f]{32}) by process (\d+) on ")


@pytest.fixture(scope="module")
def unrun(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A template project, none of its jobs run: three of about 2 s of experiment, two of about
    8 s (a pool worker orphaned by a kill while it runs one still runs it when the next pass,
    which runs the others, ends)."""
    base = tmp_path_factory.mktemp("killed")
    root = copy_template(base / "project")
    env = hermetic_env(base)
    set_rc(root, "tracker", "backend", "noop")
    ids = []
    for seeds, epochs in (("0..2", 4), ("3..4", 16)):
        made = run_cmd(
            [PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E1", "--hypothesis", "H1",
             "--sp", f"seed={seeds}", "--sp", f"epochs={epochs}", "--sp", "epoch_seconds=0.5"],
            root, env, check=True,
        )  # fmt: skip
        ids += made.stdout.split()
    return SimpleNamespace(root=root, ids=ids)


def states(root: Path, env: dict[str, str]) -> dict[str, str]:
    """Each job's state as `aexp runs --json` says it (aexp.state's one definition)."""
    out = run_cmd([PYTHON, "-m", "aexp.cli", "runs", "--json"], root, env, check=True)
    return {row["job_id"]: row["state"] for row in json.loads(out.stdout)["jobs"]}


def alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_after_kill_9_of_a_parallel_pass_the_next_pass_runs_or_names_every_job(
    unrun: SimpleNamespace, tmp_path: Path
) -> None:
    seed = int(os.environ.get("AEXP_KILL_SEED", str(random.randrange(10**6))))
    rng = random.Random(seed)
    env = dict(os.environ)
    started = time.monotonic()
    trials = []
    for trial in range(TRIALS):
        if time.monotonic() - started > BUDGET:
            break
        root = tmp_path / f"trial{trial}"
        shutil.copytree(unrun.root, root, symlinks=True)
        whole_group = rng.random() < 0.5
        delay = rng.uniform(0.5, 8.0)
        output = (tmp_path / f"killed{trial}.log").open("w+")  # what its terminal shows
        killed = subprocess.Popen(
            [PYTHON, "project.py", "run", "-p", "2"],
            cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            try:
                killed.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                if whole_group:
                    os.killpg(killed.pid, signal.SIGKILL)
                else:
                    killed.kill()  # the pass alone: its pool's workers live on
                killed.wait()
            orphans = _group(killed.pid)  # the pool's workers a kill of the pass alone left
            before = states(root, env)
            unfinished = {j for j, s in before.items() if s != "finished"}
            if whole_group:  # every process gone: no view calls a job of theirs running
                assert "running" not in before.values(), f"seed {seed}: {before}"

            following = run_cmd([PYTHON, "project.py", "run", "-p", "2"], root, env, timeout=180)
            said = f"seed {seed}, trial {trial}:\n{following.stdout}{following.stderr}"
            assert following.returncode == 0, said
            assert "Traceback" not in following.stdout + following.stderr, said
            summary, advice = following.stdout.splitlines()[-2:]
            held = {job: int(pid) for job, pid in HELD.findall(advice)}
            after = states(root, env)
            for job in unfinished:
                if after[job] == "finished":
                    continue
                # Not run by this pass: a live process of the killed pass holds it, and the
                # summary names that process.
                assert job in held, f"{job} is {after[job]} and not named; {said}"
                assert after[job] == "running", said
            for job, pid in held.items():
                assert job in unfinished and pid in orphans, said
                assert not whole_group, f"a killed group's process holds {job}; {said}"
            assert summary.startswith("run: ") and "no problems" in summary, said
            # The summary counts what this pass did: not the jobs the orphans finished.
            ours = [j for j in after if after[j] == "finished" and _pass_of(root, j) != killed.pid]
            assert summary.startswith(f"run: {len(ours)} finished, 0 failed"), said
            trials.append((whole_group, delay, len(unfinished), len(held)))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(killed.pid, signal.SIGKILL)  # the orphaned workers, if any
            deadline = time.monotonic() + 30
            while any(alive(pid) for pid in _group(killed.pid)) and time.monotonic() < deadline:
                time.sleep(0.1)
            # An orphaned worker that finished its job ends quietly: no BrokenPipeError traceback
            # from sending a result to the pass that is gone.
            output.seek(0)
            shown = output.read()
            output.close()
            assert "Traceback" not in shown, f"seed {seed}, trial {trial}:\n{shown}"

        # Once the holders are gone too, one more pass finishes everything.
        if held:
            last = run_cmd([PYTHON, "project.py", "run", "-p", "2"], root, env, timeout=180)
            assert last.returncode == 0, f"seed {seed}, trial {trial}: {last.stdout}{last.stderr}"
            assert set(states(root, env).values()) == {"finished"}, f"seed {seed}"
    print(f"\nseed {seed}: (whole group, delay, unfinished, held) per trial: {trials}")
    assert len(trials) >= 3, f"seed {seed}: only {len(trials)} trials in the budget"
    assert sum(unfinished for _, _, unfinished, _ in trials) > 0, f"seed {seed}: nothing killed"


def _pass_of(root: Path, job: str) -> int:
    """The pid of the pass that started `job`'s last attempt (its pass id: host:pid:clock)."""
    doc = json.loads((root / "workspace" / job / "signac_job_document.json").read_text())
    return int(doc["attempt"]["pass_id"].split(":")[1])


def _group(pgid: int) -> list[int]:
    """The processes of process group `pgid` still on this machine."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid:
                found.append(process.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return found
