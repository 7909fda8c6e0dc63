"""A stall preemption is its job's own: the pass goes on with every other job.

With `[workflow] on_stall = preempt` the stall watch signals the attempt's own process
(aexp.stallwatch) and marks that signal as the attempt's (`Preempted.own`): the hung attempt is
recorded preempted, stalled, and resumable, and the pass runs the healthy jobs before and after
it and ends with its summary. A preemption from outside still ends the pass (tests/test_stall.py,
tests/test_killed_pass.py). Real processes and a real template copy, serial and `-p 2`.
"""

from __future__ import annotations

import json
import signal
from datetime import datetime
from pathlib import Path

import pytest
import signac
from conftest import PYTHON, run_cmd, set_rc

from aexp import create_run, get_binding
from aexp.journal import journal_path

HEALTHY = 5


def _events(job) -> list[dict]:
    path = journal_path(job.path, get_binding(job)["run_id"])
    return [json.loads(line) for line in path.read_text().splitlines()]


def _at(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def _sweep(root: Path) -> tuple[list, object]:
    """HEALTHY quick jobs and one that hangs, placed in the middle of the order the pass
    visits the workspace in (signac's iteration, which flow follows)."""
    healthy = [
        create_run(
            experiment_id="E1",
            hypothesis_id="H1",
            statepoint={"seed": seed, "epochs": 3, "epoch_seconds": 0.1},
        )
        for seed in range(HEALTHY)
    ]
    for tag in range(100):
        hangs = {"seed": 99, "tag": tag, "epochs": 4, "epoch_seconds": 0.1, "hang_at_epoch": 2}
        stalled = create_run(experiment_id="E1", hypothesis_id="H1", statepoint=hangs)
        order = [job.id for job in signac.get_project(str(root))]
        if 0 < order.index(stalled.id) < len(order) - 1:
            return healthy, stalled
        stalled.remove()
    raise AssertionError("no state point lands in the middle of the workspace's order")


@pytest.mark.parametrize("parallel", [[], ["-p", "2"]], ids=["serial", "parallel"])
def test_a_stalled_job_is_preempted_alone_and_the_pass_runs_every_other_job(
    template: Path, parallel: list[str]
) -> None:
    set_rc(template, "tracker", "backend", "noop")
    set_rc(template, "workflow", "heartbeat_interval", "1")
    set_rc(template, "workflow", "stall_after", "3")
    set_rc(template, "workflow", "on_stall", "preempt")
    healthy, stalled = _sweep(template)

    first = run_cmd([PYTHON, "project.py", "run", *parallel], cwd=template, timeout=120)
    assert first.returncode == 0, first.stderr  # a stall preemption is not a failure
    assert f"run: {HEALTHY} finished, 0 failed, 1 preempted" in first.stdout, first.stdout
    assert "stalled: its journal logged nothing for" in first.stderr
    assert f"job {stalled.id}: preempted by SIGUSR1 as stalled" in first.stderr
    for job in healthy:
        assert get_binding(job)["state"] == "finished", (job.id, first.stderr)
    binding = get_binding(stalled)
    assert binding["state"] == "preempted" and binding["error"].startswith("stalled:")
    (end,) = [e for e in _events(stalled) if e["event"] == "finish"]
    assert end["stalled"] is True and end["preempted"] is True
    assert end["exit_code"] == 128 + signal.SIGUSR1
    if not parallel:  # one at a time: healthy jobs ran both before and after the stalled one
        began = _at(_events(stalled)[0])
        starts = [_at(_events(job)[0]) for job in healthy]
        assert any(t < began for t in starts) and any(t > _at(end) for t in starts), starts

    again = run_cmd([PYTHON, "project.py", "run", *parallel], cwd=template, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "run: 1 finished, 0 failed, 0 preempted" in again.stdout, again.stdout
    rows = [e for e in _events(stalled) if e["event"] == "log"]
    assert [r["metrics"]["epoch"] for r in rows] == [0, 1, 2, 3], "resumed at its checkpoint"
    assert get_binding(stalled)["state"] == "finished" and get_binding(stalled)["attempts"] == 2
