"""Benchmark 7: a sweep through `python project.py run` (noop backend) vs a bare FlowProject.

Each repetition starts from a fresh project of `--sweep-jobs` created, unbound jobs (two
conditions x seeds, experiment.py's default 20 epochs). Ours: the template's project.py with
signac.rc's backend set to noop (bind, execute with heartbeat, checkpoints and event log, finish
with the result artifact). Baseline: bench/baselines/sweep.py, one flow operation calling the same
`experiment` with an untracked stand-in (log does nothing, checkpoints are plain `json.dump`
files). An informational third side runs that baseline with aexp's own checkpoint writer, so
that tracking is the only difference. All run to completion and are checked; the three
alternate. Target: ratio <= 1.3.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Result, hermetic_env, log, make_result, run_timed
from bench.generate import fresh_sweep_project

LIMIT = 1.3


def _check(root: Path, n_jobs: int, *, ours: bool) -> None:
    workspace = root / "workspace"
    done = 0
    for name in os.listdir(workspace):
        job = workspace / name
        if not (job / "result.json").exists():
            continue
        if ours:
            with open(job / "signac_job_document.json", encoding="utf-8") as fh:
                if json.load(fh)["tracker"]["state"] != "finished":
                    continue
        done += 1
    if done != n_jobs:
        side = "project.py run" if ours else "baseline_sweep.py run"
        raise RuntimeError(f"{side} finished {done} of {n_jobs} jobs")


def run(opts: Any) -> list[Result]:
    n_jobs = opts.sweep_jobs
    work = opts.cache / "sweep"
    env = hermetic_env(work / "env")
    slots_env = dict(env, BENCH_AEXP_CHECKPOINTS="1")

    def side(name: str, script: str, side_env: dict[str, str]) -> float:
        ours = script == "project.py"
        root = fresh_sweep_project(work / name, n_jobs)
        elapsed = run_timed([PYTHON, script, "run"], root, side_env)
        _check(root, n_jobs, ours=ours)
        return elapsed

    sides = {
        "ours": lambda: side("ours", "project.py", env),
        "bare": lambda: side("bare", "baseline_sweep.py", env),
        "slots": lambda: side("slots", "baseline_sweep.py", slots_env),
    }
    reps = max(3, opts.reps // 2 + 1) if n_jobs >= 100 else opts.reps
    log(f"  sweep {n_jobs} jobs: {reps} rounds of ours / bare / bare with aexp checkpoints")
    samples: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for rep in range(reps):
        for name in order if rep % 2 == 0 else order[::-1]:
            samples[name].append(sides[name]())
    return [
        make_result(
            f"sweep of {n_jobs} jobs via run",
            7,
            samples["ours"],
            samples["bare"],
            limit=LIMIT,
            notes="python project.py run (noop backend) vs bare FlowProject without tracking "
            "(checkpoints are plain json.dump files)",
            extra={"jobs": n_jobs},
        ),
        make_result(
            "  same, bare with aexp's checkpoints",
            7,
            samples["ours"],
            samples["slots"],
            limit=LIMIT,
            judged=False,
            notes="as above, but the bare project writes checkpoints with aexp's "
            "write_checkpoint (in place, two slots): the cost of tracking alone",
            extra={"jobs": n_jobs},
        ),
    ]
