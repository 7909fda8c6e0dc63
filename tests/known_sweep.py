"""A sweep whose results are known numbers (tests/test_groups.py, tests/test_plots.py): a real
signac project run through the library (noop backend: the journal alone), learning rate x
width, three seeds each. Each run logs three rows; its loss falls by 0.1 a row to the value
chosen in FINAL (so that value is its minimum and its last), its accuracy rises 0.5, 0.6, 0.7.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import aexp
from aexp.lifecycle import Preempted, run_lifecycle

T1 = math.tan(0.475 * math.pi)  # t(0.975, 1)
T2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))  # t(0.975, 2)
STEPS = 3
FINAL = {  # (lr, width, seed): (the run's last and lowest loss, how it ends)
    (0.1, 16, 0): (0.30, "finished"),
    (0.1, 16, 1): (0.32, "finished"),
    (0.1, 16, 2): (0.34, "finished"),
    (0.1, 32, 0): (0.25, "finished"),
    (0.1, 32, 1): (0.27, "finished"),
    (0.1, 32, 2): (0.10, "failed"),
    (0.01, 16, 0): (0.40, "finished"),
    (0.01, 16, 1): (0.45, "preempted"),
    (0.01, 16, 2): (None, "finished"),  # never logs a loss
    (0.01, 32, 0): (0.26, "finished"),
    (0.01, 32, 1): (0.26, "finished"),
    (0.01, 32, 2): (0.26, "finished"),
}


def loss_at(final: float, step: int) -> float:
    """The loss a run whose last loss is `final` logs at `step`."""
    return round(final + 0.1 * (STEPS - 1 - step), 10)


def _attempt(job, final: float | None, ending: str) -> None:
    """One attempt: STEPS rows falling to `final` (no loss at all when None), then its end."""
    rows = [{"acc": round(0.5 + 0.1 * s, 10)} for s in range(STEPS)]
    if final is not None:
        for step, row in enumerate(rows):
            row["loss"] = loss_at(final, step)
    try:
        with run_lifecycle(job) as tracker:
            for row in rows:
                tracker.log(row)
            if ending == "failed":
                raise RuntimeError("injected failure")
            if ending == "preempted":
                raise Preempted(15)
    except (RuntimeError, Preempted):
        pass


def build_sweep(root: Path) -> SimpleNamespace:
    """The sweep in a new project at `root`; `ids` maps (lr, width, seed) and "bound" (a run
    of lr=0.1, width=16, seed 3 bound and never executed) to job ids."""
    import signac

    root.mkdir(parents=True)
    project = signac.init_project(root)
    (root / "signac.rc").write_text("[tracker]\nbackend = noop\nproject = demo\n")
    ids: dict = {}
    for (lr, width, seed), (final, ending) in FINAL.items():
        job = aexp.create_run(
            experiment_id="E1",
            hypothesis_id="H1",
            statepoint={"lr": lr, "width": width, "seed": seed},
            project=project,
        )
        aexp.bind_tracker(job, "noop", project="demo", group_by=())
        _attempt(job, final, ending)
        ids[(lr, width, seed)] = job.id
    never = aexp.create_run(
        experiment_id="E1",
        hypothesis_id="H1",
        statepoint={"lr": 0.1, "width": 16, "seed": 3},
        project=project,
    )
    aexp.bind_tracker(never, "noop", project="demo", group_by=())
    ids["bound"] = never.id
    return SimpleNamespace(root=root, project=project, ids=ids)
