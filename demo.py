"""The demo: a small sweep run end to end on this machine, then the status dashboard.

    python demo.py            # H012/E018: conditions full and ablated x seeds 0..2

It creates the jobs with aexp's Python API, runs `python project.py run` until nothing is
eligible, prints `python project.py status -d`, and ends with two lines: what happened, and what
to do next (where the results are, how to sync). With the shipped signac.rc the runs are W&B
offline runs (no account, no network); set `backend = noop` in signac.rc for the journal alone.
Running it again changes nothing: every job is already finished.
"""

from __future__ import annotations

from aexp.startup import quiet_interrupts, release_interrupts

quiet_interrupts(__name__)  # a Ctrl-C while the imports load: one line, exit 130 (aexp.startup)

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import aexp  # noqa: E402

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
        code = _call([sys.executable, "project.py", *args], env)
        if code:
            return code
    print()
    print(*summary(project, jobs), sep="\n")
    return 0


def _call(args: list[str], env: dict[str, str]) -> int:
    """Run `args` here and return its exit code. A Ctrl-C reaches the command too, which records
    its attempts preempted and says so; the demo waits for it rather than kill it (as
    subprocess.call does after a quarter of a second)."""
    with subprocess.Popen(args, cwd=ROOT, env=env) as command:
        while True:
            try:
                return command.wait()
            except KeyboardInterrupt:
                continue


def summary(project: object, jobs: list) -> tuple[str, str]:
    """The demo's last two lines: what happened to the sweep, and what to do next."""
    from aexp.jobdoc import read_doc
    from aexp.workflow import needs_sync_of

    states: dict[str, int] = {}
    unsynced = 0
    wandb_offline = False
    for job in jobs:
        binding = read_doc(job).get("tracker") or {}
        state = binding.get("state", "unbound")
        states[state] = states.get(state, 0) + 1
        unsynced += bool(binding) and needs_sync_of(binding)
        wandb_offline |= "wandb" in (binding.get("backends") or {}) and bool(binding.get("offline"))
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    where = os.path.relpath(project.workspace)  # type: ignore[attr-defined]
    sync = (
        f"{unsynced} runs wait for an upload: `wandb login`, then `aexp sync-offline` on a machine"
        " with network"
        if unsynced
        else "nothing to upload"
    )
    copy = ", W&B's offline copy in <job>/wandb/" if wandb_offline else ""
    return (
        f"done: {len(jobs)} jobs of H012/E018 ran ({counts}); each run's metrics are in its "
        f"job's journal under {where}/<job>/tracker_log/{copy}.",
        "next: `aexp runs --metrics loss`, `aexp plot loss --by condition`, or "
        f"`python dashboard.py run` show the results here; {sync}.",
    )


if __name__ == "__main__":
    try:
        release_interrupts()
        sys.exit(main())
    except KeyboardInterrupt:
        print("demo interrupted (Ctrl-C); python demo.py again goes on.", file=sys.stderr)
        sys.exit(130)
