"""Benchmark 1: `python project.py status` vs a bare FlowProject with isfile conditions.

Both run in the same generated project (bench/generate.py `status_project`: each job has the
document aexp writes and the marker files the baseline's conditions look for), as fresh
processes, alternating, at every size of `--status-sizes` and in every mix of states
(generate.MIXES): "mixed" (created, bound, running alive and stale, preempted, completed,
failed, finished, synced, one corrupt job in a thousand), "created" (all freshly created,
unbound) and "finished" (all finished offline, not synced; no credentials here, so nothing is
eligible). Before timing, both `status` outputs are parsed and must agree on the number of jobs
and on the eligible jobs of every operation and group (an assertion, not a measurement).
Target: ratio <= 1.15 at every size and mix (wall clock). The median ratio of the same runs'
CPU times (user + system) is logged and kept in the results (`cpu_ratio`): on this shared
2-core machine it varies far less than the wall clock.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Result, alternate, hermetic_env, log, make_result, run_timed_cpu
from bench.generate import MIXES, status_project

LIMIT = 1.15
# A row of flow's "operation/group | number of eligible jobs | submission status" table.
_ROW = re.compile(r"^(\w+(?: \(\d+ ops\))?)\s+(\d+)\s+\[", re.MULTILINE)


def eligible_counts(root: Path, env: dict[str, str], script: str) -> dict[str, int]:
    """What `python <script> status` reports: jobs, jobs with eligible operations, and the
    eligible jobs of each operation or group (those with none are left out, as flow does)."""
    out = subprocess.run(
        [PYTHON, script, "status"], cwd=root, env=env, capture_output=True, text=True, check=True
    ).stdout
    overview = re.search(r"Overview: (\d+) jobs/aggregates, (\d+) jobs/aggregates with", out)
    if overview is None:
        raise RuntimeError(f"{script} status printed no overview:\n{out[-2000:]}")
    counts = {"jobs": int(overview.group(1)), "with eligible operations": int(overview.group(2))}
    counts.update((name, int(n)) for name, n in _ROW.findall(out))
    return counts


def _reps(opts: Any, n_jobs: int) -> int:
    # Small workspaces take a second or less: more rounds tame the noise of a shared machine.
    if n_jobs <= 2_000 and opts.mode != "quick":
        return opts.reps * 2
    return opts.reps if n_jobs <= 10_000 else max(3, opts.reps // 2)


def run(opts: Any) -> list[Result]:
    results = []
    for n_jobs in opts.status_sizes:
        for mix in MIXES:
            root = status_project(n_jobs, cache=opts.cache, mix=mix)
            env = hermetic_env(root / ".bench-env")
            # Also a warm-up of the file system cache for both.
            ours = eligible_counts(root, env, "project.py")
            base = eligible_counts(root, env, "baseline_status.py")
            if ours != base or ours["jobs"] != n_jobs:
                raise RuntimeError(f"status {n_jobs} {mix}: ours {ours} != baseline {base}")
            reps = _reps(opts, n_jobs)
            log(f"  status {n_jobs} jobs, {mix}: {reps} alternating repetitions")
            cpu_a: list[float] = []
            cpu_b: list[float] = []
            a, b = alternate(
                lambda root=root, env=env, cpu=cpu_a: run_timed_cpu(
                    [PYTHON, "project.py", "status"], root, env, cpu
                ),
                lambda root=root, env=env, cpu=cpu_b: run_timed_cpu(
                    [PYTHON, "baseline_status.py", "status"], root, env, cpu
                ),
                reps,
                warmup=0,
            )
            cpu_ratio = statistics.median(x / y for x, y in zip(cpu_a, cpu_b, strict=True))
            log(f"    CPU time ratio {cpu_ratio:.3f} (load {os.getloadavg()[0]:.2f})")
            results.append(
                make_result(
                    f"status, {n_jobs} jobs, {mix}",
                    1,
                    a,
                    b,
                    limit=LIMIT,
                    notes="python project.py status vs bare FlowProject with job.isfile "
                    "conditions; eligible counts asserted equal",
                    extra={
                        "jobs": n_jobs,
                        "mix": mix,
                        "eligible": ours,
                        "cpu_ratio": round(cpu_ratio, 3),
                        "samples_cpu_ours": [round(x, 4) for x in cpu_a],
                        "samples_cpu_baseline": [round(x, 4) for x in cpu_b],
                    },
                )
            )
    return results
