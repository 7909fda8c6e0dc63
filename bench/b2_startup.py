"""Benchmark 2: the start-up of `python project.py --help` vs a bare FlowProject's `--help`.

Both scripts sit in one project (the template's files, copied afresh: bench/generate.py
`copy_template`) and run as fresh interpreters, alternating, with bytecode caches warm (a
warm-up round of each). The baseline is bench/baselines/startup.py: a FlowProject with one
operation calling the same experiment.py. What ours adds is aexp's part of start-up: reading
signac.rc, and the conditions, labels and operations project.py declares. Target: ratio <= 1.10.

It also asserts, in a separate process, that `project.py --help` imports neither wandb nor
mlflow, and records which aexp modules it loads (the rest are imported on first use).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench.common import (
    BENCH,
    PYTHON,
    Result,
    alternate,
    hermetic_env,
    log,
    make_result,
    run_timed_cpu,
)
from bench.generate import copy_template

LIMIT = 1.10
# Runs project.py --help in-process and prints the modules it loaded (flow's main ends in exit).
PROBE = (
    "import json, runpy, sys\n"
    "sys.argv = ['project.py', '--help']\n"
    "try:\n"
    "    runpy.run_path('project.py', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stdout = sys.__stderr__\n"
    "print(json.dumps(sorted(sys.modules)), file=sys.__stdout__)\n"
)


def _loaded(root: Any, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [PYTHON, "-c", PROBE], cwd=root, env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(opts: Any) -> list[Result]:
    root = opts.cache / "startup"
    root.mkdir(parents=True, exist_ok=True)
    copy_template(root, extra_files={"baseline_startup.py": BENCH / "baselines" / "startup.py"})
    env = hermetic_env(root / ".bench-env")
    modules = _loaded(root, env)
    heavy = sorted(m for m in modules if m.split(".")[0] in ("wandb", "mlflow"))
    if heavy:
        raise RuntimeError(f"project.py --help imported {heavy[:5]}")
    ours_aexp = [m for m in modules if m == "aexp" or m.startswith("aexp.")]
    reps = opts.reps * 4
    log(f"  project.py --help vs bare FlowProject --help: {reps} alternating repetitions")
    cpu_a: list[float] = []
    cpu_b: list[float] = []
    a, b = alternate(
        lambda: run_timed_cpu([PYTHON, "project.py", "--help"], root, env, cpu_a),
        lambda: run_timed_cpu([PYTHON, "baseline_startup.py", "--help"], root, env, cpu_b),
        reps,
        warmup=2,
    )
    cpu_a, cpu_b = cpu_a[2:], cpu_b[2:]  # without the warm-up rounds
    return [
        make_result(
            "start-up: project.py --help",
            2,
            a,
            b,
            limit=LIMIT,
            notes="python project.py --help vs a bare FlowProject (one operation, same "
            "experiment.py) --help, fresh interpreters; wandb and mlflow never imported "
            "(asserted)",
            extra={"aexp_modules": ours_aexp, "modules": len(modules)},
        ),
        make_result(
            "  same, CPU time (user + system)",
            2,
            cpu_a,
            cpu_b,
            limit=LIMIT,
            judged=False,
            notes="the same runs' CPU seconds: less disturbed by other work on the machine",
        ),
    ]
