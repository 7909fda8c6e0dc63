"""Benchmark 11: `python project.py run -p 2` vs `python project.py run`, 50 ms jobs.

Each side gets a fresh project of `--parallel-jobs` created, unbound jobs (noop backend), whose
experiment.py is replaced by bench/baselines/experiment_50ms.py (50 ms of CPU work per job, five
logged rows and checkpoints). Ours runs it with flow's process pool of two workers
(`run -p 2`), the baseline serially (`run`). Both must finish every job (result.json written,
the binding's state `finished`). The sides alternate; the ratio is parallel / serial time, the
target a speed-up of at least 1.7x (ratio <= 1/1.7).

The CPU time of each whole command (pool workers included) is kept too: the work parallelism
adds, which load does not change. The machine load average is recorded with each repetition:
on a 2-core machine anything else running takes from the parallel side first, so a loaded
machine depresses the speed-up.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench.common import BENCH, PYTHON, Result, hermetic_env, log, make_result, run_timed_cpu
from bench.generate import fresh_sweep_project

SPEED_UP = 1.7
LIMIT = 1 / SPEED_UP
WORKERS = 2


def _check(root: Path, n_jobs: int, side: str) -> None:
    """Raise unless every job of `root` ran to its end (result.json, binding finished)."""
    done = 0
    workspace = root / "workspace"
    for name in os.listdir(workspace):
        job = workspace / name
        if not (job / "result.json").exists():
            continue
        with open(job / "signac_job_document.json", encoding="utf-8") as fh:
            if json.load(fh).get("tracker", {}).get("state") == "finished":
                done += 1
    if done != n_jobs:
        raise RuntimeError(f"{side} finished {done} of {n_jobs} jobs")


def run(opts: Any) -> list[Result]:
    n_jobs = opts.parallel_jobs
    work = opts.cache / "parallel"
    env = hermetic_env(work / "env")

    cpu: dict[str, list[float]] = {"parallel": [], "serial": []}

    def side(name: str, args: list[str]) -> float:
        root = fresh_sweep_project(work / name, n_jobs)
        shutil.copy2(BENCH / "baselines" / "experiment_50ms.py", root / "experiment.py")
        elapsed = run_timed_cpu([PYTHON, "project.py", "run", *args], root, env, cpu[name])
        _check(root, n_jobs, name)
        return elapsed

    reps = max(3, opts.reps // 2 + 1) if n_jobs >= 100 else opts.reps
    log(f"  {n_jobs} jobs of 50 ms: {reps} alternating rounds of run -p {WORKERS} / run")
    loads: list[float] = []
    parallel: list[float] = []
    serial: list[float] = []
    for rep in range(reps):
        loads.append(round(os.getloadavg()[0], 2))
        order = ("parallel", "serial") if rep % 2 == 0 else ("serial", "parallel")
        for name in order:
            if name == "parallel":
                parallel.append(side(name, ["-p", str(WORKERS)]))
            else:
                serial.append(side(name, []))
    shutil.rmtree(work, ignore_errors=True)
    result = make_result(
        f"run -p {WORKERS}, {n_jobs} jobs of 50 ms",
        11,
        parallel,
        serial,
        limit=LIMIT,
        notes=f"python project.py run -p {WORKERS} vs python project.py run (noop backend, "
        "50 ms CPU per job); ratio = parallel / serial, speed-up = 1 / ratio",
        extra={
            "jobs": n_jobs,
            "workers": WORKERS,
            "speed_up": round(1 / result_ratio(parallel, serial), 3),
            "loadavg_1min_per_rep": loads,
            # CPU seconds of the whole command (its pool workers included): what parallelism
            # adds in work, whatever the load; 1.0 would be none at all.
            "cpu_ratio": round(result_ratio(cpu["parallel"], cpu["serial"]), 3),
            "samples_cpu_parallel": [round(x, 3) for x in cpu["parallel"]],
            "samples_cpu_serial": [round(x, 3) for x in cpu["serial"]],
        },
    )
    result.target = f"<= {LIMIT:.3f} (>= {SPEED_UP}x)"
    return [result]


def result_ratio(a: list[float], b: list[float]) -> float:
    """The median of the per-round ratios a/b (what make_result reports)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))
