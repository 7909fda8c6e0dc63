"""The demo: a small sweep run end to end on this machine, then the status dashboard.

    python demo.py            # H012/E018: conditions full and ablated x seeds 0..2

It creates the jobs with aexp's Python API, runs `python project.py run` until nothing is
eligible, and prints `python project.py status -d`. With the shipped signac.rc the runs are W&B
offline runs (no account, no network); set `backend = noop` in signac.rc for JSONL event logs.
Running it again changes nothing: every job is already finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aexp

ROOT = Path(__file__).resolve().parent


def main() -> int:
    project = aexp.open_project(ROOT)
    jobs = [
        aexp.create_run(
            experiment_id="E018",
            hypothesis_id="H012",
            statepoint={"condition": condition, "seed": seed, "epochs": 10},
            project=project,
        )
        for condition in ("full", "ablated")
        for seed in range(3)
    ]
    print(f"sweep: {len(jobs)} jobs in {project.workspace}")
    # The demo runs here, not through a scheduler: `status` need not ask SLURM (a SLURM whose
    # controller is down would only add a warning).
    env = {"SIGNAC_FLOW_ENVIRONMENT": "StandardEnvironment", **os.environ}
    for args in (["run"], ["status", "-d"]):
        print(f"\n$ python project.py {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, "project.py", *args], cwd=ROOT, env=env)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
