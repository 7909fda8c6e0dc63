"""`python demo.py` in a fresh copy of the template: it runs the sweep and ends with two lines
saying what happened and what to do next."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import PYTHON, run_cmd, set_rc


def test_the_demo_ends_by_saying_what_happened_and_what_next(template: Path) -> None:
    set_rc(template, "tracker", "backend", "noop")  # the journal alone: fast, nothing to sync
    result = run_cmd([PYTHON, "demo.py"], template, timeout=300, check=True)
    *_, done, what_next = result.stdout.rstrip("\n").splitlines()
    assert done == (
        "done: 6 jobs of H012/E018 ran (6 finished); each run's metrics are in its job's "
        "journal under workspace/<job>/tracker_log/."
    )
    assert what_next == (
        "next: `aexp runs --metrics loss`, `aexp plot loss --by condition`, or "
        "`python dashboard.py run` show the results here; nothing to upload."
    )
    # The commands it names work on what it made.
    runs = run_cmd([str(Path(PYTHON).parent / "aexp"), "runs", "--metrics", "loss", "-q"], template)
    assert len(runs.stdout.split()) == 6


def test_a_ctrl_c_during_the_demo_stops_it_in_one_line_and_keeps_the_attempts(
    template: Path,
) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) while the demo's `run` works: no
    traceback, exit 130, the attempts it cut short recorded preempted (the demo waits for its
    `run` to record them rather than kill it), and the demo run again finishes the sweep."""
    set_rc(template, "tracker", "backend", "noop")
    experiment = template / "experiment.py"  # epochs of 0.1 s: the run is still at work
    code = experiment.read_text()
    assert 'sp.get("epoch_seconds", 0)' in code
    experiment.write_text(
        code.replace('sp.get("epoch_seconds", 0)', 'sp.get("epoch_seconds", 0.1)')
    )
    demo = subprocess.Popen(
        [PYTHON, "demo.py"], cwd=template, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any(template.glob("workspace/*/tracker_log/*/events.jsonl")):
            assert time.monotonic() < deadline and demo.poll() is None, "the run never started"
            time.sleep(0.05)
        os.killpg(demo.pid, signal.SIGINT)
        out, err = demo.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)
    assert demo.returncode == 130, out + err
    assert "Traceback" not in out + err, err
    runs = run_cmd([str(Path(PYTHON).parent / "aexp"), "runs", "--json"], template)
    states = [row["state"] for row in json.loads(runs.stdout)["jobs"]]
    assert "preempted" in states and "running" not in states, states

    again = run_cmd([PYTHON, "demo.py"], template, timeout=300, check=True)
    assert (
        again.stdout.rstrip("\n")
        .splitlines()[-2]
        .startswith("done: 6 jobs of H012/E018 ran (6 finished)")
    )
