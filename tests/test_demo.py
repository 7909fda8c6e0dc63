"""`python demo.py` in a fresh copy of the template: it runs the sweep and ends with two lines
saying what happened and what to do next."""

from __future__ import annotations

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
