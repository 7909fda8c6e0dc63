"""Benchmark 10: a W&B offline sweep through `python project.py run` vs hand-written wandb code.

Each repetition starts from a fresh project of `--wandb-sweep-jobs` created, unbound jobs
(bench/generate.py's `fresh_sweep_project`, backend = wandb, offline) whose experiment.py is
replaced on both sides by the same trivial experiment: ROWS logged rows and a result.json, no
compute. Ours: the template's project.py (bind, execute inside a W&B offline run fed live from the
journal, finish with result.json attached as an artifact). Baseline: bench/baselines/
wandb_sweep.py, a bare FlowProject whose one operation calls `wandb.init(mode="offline")`, runs
the experiment with `run.log`, attaches result.json and calls `run.finish()` (what a user writes
by hand). Both sides run in the hermetic environment of bench/common.py (W&B's base URL a closed
loopback port; offline, nothing is sent). After every repetition both are checked complete: every
job has its result and exactly one offline run folder whose transaction log holds ROWS rows
(steps 0..ROWS-1) and W&B's exit record with code 0, and ours has every job document's binding
state "finished". From 100 jobs on (not in quick mode, which also skips the warm-up), an
informational third side runs the baseline with what aexp collects once per process switched
off in W&B (`x_save_requirements=False`, `disable_git=True`; its runs lack the packages' list
and the git state), so that aexp's own work is the only difference. The sides alternate (ours,
hand, lean, then lean, hand, ours, ...); median of the paired ratios, and ms/job of each side.
Target (issue 15): ratio <= 0.8 against the hand-written baseline.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Result, hermetic_env, log, make_result, run_timed
from bench.generate import fresh_sweep_project, set_rc

LIMIT = 0.8
ROWS = 5  # rows each job logs

# The trivial experiment both sides run (written over the project's experiment.py).
EXPERIMENT = f'''"""Benchmark 10's trivial experiment: {ROWS} rows, a result file, no compute."""

import json


def experiment(job, tracker):
    seed = job.sp.get("seed", 0)
    loss = 1.0
    for epoch in range({ROWS}):
        loss = loss * 0.5 + seed * 1e-6
        tracker.log({{"epoch": epoch, "loss": loss}})
    with open(job.fn("result.json"), "w", encoding="utf-8") as fh:
        json.dump({{"loss": loss, "epochs": {ROWS}}}, fh)
'''


def make_project(root: Path, n_jobs: int) -> Path:
    """A fresh project of `n_jobs` unbound jobs, W&B offline, the trivial experiment and the
    hand-written baseline (`baseline_wandb_sweep.py`) beside project.py."""
    fresh_sweep_project(root, n_jobs, backend="wandb")
    set_rc(root / "signac.rc", "tracker", "offline", "true")
    (root / "experiment.py").write_text(EXPERIMENT, encoding="utf-8")
    baseline = Path(__file__).resolve().parent / "baselines" / "wandb_sweep.py"
    (root / "baseline_wandb_sweep.py").write_text(baseline.read_text(encoding="utf-8"))
    return root


def check(root: Path, n_jobs: int, *, ours: bool) -> None:
    """Raise RuntimeError unless every job finished with one complete offline run (ROWS rows,
    steps 0..ROWS-1, an exit record with code 0); for ours also the binding's state."""
    from aexp.wandb_offline.decode import read_fragment

    side = "project.py run" if ours else "baseline_wandb_sweep.py run"
    workspace = root / "workspace"
    names = os.listdir(workspace)
    if len(names) != n_jobs:
        raise RuntimeError(f"{side}: {len(names)} job directories, expected {n_jobs}")
    for name in names:
        job = workspace / name
        if not (job / "result.json").exists():
            raise RuntimeError(f"{side}: job {name} has no result.json")
        if ours:
            with open(job / "signac_job_document.json", encoding="utf-8") as fh:
                state = json.load(fh)["tracker"]["state"]
            if state != "finished":
                raise RuntimeError(f"{side}: job {name} is {state}, not finished")
        folders = sorted((job / "wandb").glob("offline-run-*"))
        if len(folders) != 1:
            raise RuntimeError(f"{side}: job {name} has {len(folders)} offline run folders")
        fragment = read_fragment(folders[0])
        if fragment.steps != list(range(ROWS)) or not fragment.exited or fragment.exit_code:
            raise RuntimeError(
                f"{side}: job {name}'s offline run is incomplete (steps {fragment.steps}, "
                f"exit record {fragment.exited}, exit code {fragment.exit_code})"
            )


def run(opts: Any) -> list[Result]:
    n_jobs = opts.wandb_sweep_jobs
    work = opts.cache / "wandb-sweep"
    env = hermetic_env(work / "env")
    lean_env = dict(env, BENCH_WANDB_LEAN="1")
    full = n_jobs >= 100  # quick mode (a smoke): no warm-up, no informational side
    sides = {  # name: (script, environment)
        "ours": ("project.py", env),
        "hand": ("baseline_wandb_sweep.py", env),
    }
    if full:
        sides["lean"] = ("baseline_wandb_sweep.py", lean_env)

    def side(name: str, jobs: int = n_jobs) -> float:
        script, side_env = sides[name]
        root = make_project(work / name, jobs)
        elapsed = run_timed([PYTHON, script, "run"], root, side_env)
        check(root, jobs, ours=name == "ours")
        return elapsed

    # A 500-job round takes about three minutes: fewer rounds at that size.
    reps = max(3, opts.reps // 2 + 1) if full else opts.reps
    log(f"  W&B offline sweep of {n_jobs} jobs: {reps} rounds of {' / '.join(sides)}")
    if full:
        for name in sides:  # warm-up: file caches, the SDK's bytecode
            side(name, 3)
    samples: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for rep in range(reps):
        for name in order if rep % 2 == 0 else order[::-1]:
            samples[name].append(side(name))
    ms = {name: [1000 * t / n_jobs for t in values] for name, values in samples.items()}
    median_ms = {name: round(statistics.median(values), 2) for name, values in ms.items()}
    log("  median ms/job: " + ", ".join(f"{k} {v:.1f}" for k, v in median_ms.items()))
    extra = {
        "jobs": n_jobs,
        "rows_per_job": ROWS,
        "ms_per_job": {name: [round(x, 2) for x in values] for name, values in ms.items()},
        "median_ms_per_job": median_ms,
    }
    results = [
        make_result(
            f"W&B offline sweep of {n_jobs} jobs",
            10,
            samples["ours"],
            samples["hand"],
            limit=LIMIT,
            notes="python project.py run (backend = wandb, offline) vs a bare FlowProject "
            "calling wandb.init(mode='offline') / run.log / log_artifact / run.finish itself",
            extra=extra,
        ),
    ]
    if "lean" in samples:
        results.append(
            make_result(
                "  same, hand-written without requirements and git",
                10,
                samples["ours"],
                samples["lean"],
                limit=LIMIT,
                judged=False,
                notes="as above, but the hand-written runs also switch off what aexp collects "
                "once per process (x_save_requirements=False, disable_git=True): aexp's own cost",
                extra=extra,
            )
        )
    return results
