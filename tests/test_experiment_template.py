"""The template's own experiment.py, as a researcher gets it: killed between logging an epoch and
checkpointing it, it resumes without a second row for that epoch in any tracker, and ends where an
uninterrupted run of the same point ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc

import aexp
from aexp.journal import read_journal


def _journal(job) -> Path:
    (path,) = Path(job.path, "tracker_log").glob("*/events.jsonl")
    return path


def _logged_steps(path: Path) -> list[int]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:  # the line being written
            continue
        if event.get("event") == "log":
            rows.append(event["step"])
    return rows


@pytest.mark.parametrize("killed_after_epoch", [0, 2])
def test_an_epoch_redone_after_a_kill_adds_no_row(template: Path, killed_after_epoch: int) -> None:
    set_rc(template, "tracker", "backend", "noop")
    epochs = 5
    point = {"condition": "full", "seed": 0, "epochs": epochs}
    job = aexp.create_run(
        experiment_id="E1", hypothesis_id="H1", statepoint={**point, "epoch_seconds": 1.0}
    )
    whole = aexp.create_run(experiment_id="E1", hypothesis_id="H1", statepoint=point)
    run_cmd([PYTHON, "project.py", "run", "-j", whole.id], cwd=template, check=True)
    proc = subprocess.Popen(
        [PYTHON, "project.py", "run"],
        cwd=template,
        env=dict(os.environ),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Killed in the second the experiment sleeps after logging the epoch and before its
        # checkpoint: the next attempt does that epoch again.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            logs = list(Path(job.path).glob("tracker_log/*/events.jsonl"))
            if logs and killed_after_epoch in _logged_steps(logs[0]):
                break
            time.sleep(0.02)
        else:
            pytest.fail("the experiment never logged its epoch")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    run_cmd([PYTHON, "project.py", "run"], cwd=template, check=True)
    journal = read_journal(_journal(job))
    history = journal.history()
    assert [row.step for row in history] == list(range(epochs))
    assert [row.metrics["epoch"] for row in history] == list(range(epochs))
    redone = [row for row in journal.rows if row.redo]
    assert [(row.step, row.metrics["epoch"]) for row in redone] == [
        (killed_after_epoch, killed_after_epoch)
    ]
    binding = aexp.get_binding(job)
    assert binding["state"] == "finished" and binding["last_step"] == epochs - 1
    # The same numbers as the run that was never interrupted: each epoch, the re-done one, the end.
    reference = read_journal(_journal(whole)).history()
    assert [row.metrics for row in history] == [row.metrics for row in reference]
    assert redone[0].metrics == reference[killed_after_epoch].metrics
    result = json.loads(Path(job.path, "result.json").read_text())
    assert result == json.loads(Path(whole.path, "result.json").read_text())
