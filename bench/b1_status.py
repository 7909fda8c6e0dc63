"""Benchmark 1: `python project.py status` vs a bare FlowProject with isfile conditions.

Both run in the same generated project (bench/generate.py: jobs in mixed states, each with the
job document aexp writes and the marker files the baseline's conditions look for), as fresh
processes, alternating. The target (ratio <= 1.15) is judged at 10,000 jobs; other sizes are
reported against the same bound for information.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from bench.common import PYTHON, Result, alternate, hermetic_env, log, make_result, run_timed
from bench.generate import status_project

LIMIT = 1.15
JUDGED_SIZE = 10_000


def _overview(root, env, script: str) -> int:
    out = subprocess.run(
        [PYTHON, script, "status"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Overview: (\d+) jobs", out)
    return int(match.group(1)) if match else -1


def run(opts: Any) -> list[Result]:
    results = []
    for n_jobs in opts.status_sizes:
        root = status_project(n_jobs, cache=opts.cache)
        env = hermetic_env(root / ".bench-env")
        # Sanity: both see every job (also a warm-up of the file system cache).
        seen = (_overview(root, env, "project.py"), _overview(root, env, "baseline_status.py"))
        if seen != (n_jobs, n_jobs):
            raise RuntimeError(f"status saw {seen} jobs, expected {n_jobs} in both")
        reps = opts.reps if n_jobs <= JUDGED_SIZE else max(3, opts.reps // 2)
        log(f"  status {n_jobs} jobs: {reps} alternating repetitions")
        a, b = alternate(
            lambda root=root, env=env: run_timed([PYTHON, "project.py", "status"], root, env),
            lambda root=root, env=env: run_timed(
                [PYTHON, "baseline_status.py", "status"], root, env
            ),
            reps,
            warmup=0,
        )
        results.append(
            make_result(
                f"status, {n_jobs} jobs",
                1,
                a,
                b,
                limit=LIMIT,
                judged=n_jobs == JUDGED_SIZE,
                notes="python project.py status vs bare FlowProject with job.isfile conditions",
                extra={"jobs": n_jobs},
            )
        )
    return results
