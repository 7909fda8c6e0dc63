"""Benchmark 4: W&B offline, per-step `log` through aexp vs raw `run.log`.

Runs in a child process with the hermetic environment (wandb is imported there, never in the
runner). Offline runs with identical settings are open at once (W&B's `reinit="create_new"`):
one opened by `WandbAdapter.init_run` and logged through `Tracker.log` exactly as an attempt
logs (validation, step counter, summary, the row written and flushed to the run's journal, then
handed to the live W&B mirror, aexp/mirrors.py), and one opened by `wandb.init` with the same
arguments and logged with `run.log(row, step=i)`. Each step is logged to both in turn
(who goes first rotates); a repetition is a block of steps, followed by a pause so that
wandb-core's backlog does not spill into the next block. The ratio of a block is the summed time
of ours over raw's; the result is the median over blocks. Target: ratio <= 1.10 (issue 11: the
journal written alongside).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, Result, hermetic_env, log, make_result

LIMIT = 1.10


def _child(steps: int, reps: int, workdir: str) -> None:
    import wandb

    from aexp.journal import JournalWriter, journal_path
    from aexp.mirrors import LiveMirrors, _Mirror
    from aexp.tracker import Tracker
    from aexp.trackers.wandb import WandbAdapter, keep_wandb_local

    root = Path(workdir)
    spec = {
        "project": "bench",
        "group": "H012/E018/full",
        "tags": ["H012", "E018", "full"],
        "config": {"seed": 0, "lr": 0.5, "job_id": "0" * 32},
    }

    def open_tracker(adapter: Any, name: str) -> tuple[Any, Any]:
        # What run_lifecycle sets up for an attempt: the journal, then the live W&B mirror.
        where = root / name
        where.mkdir()
        handle = adapter.init_run(**spec, notes=None, offline=True, workdir=where)
        writer = JournalWriter(journal_path(where, handle.id))
        writer.resume_run(attempt=1)
        mirrors = LiveMirrors(job=None, open_mirrors=[_Mirror("wandb", adapter, handle)])
        tracker = Tracker(job=None, run_id=handle.id, attempt=1, _journal=writer, _mirrors=mirrors)
        return mirrors, tracker

    ours_mirrors, ours_tracker = open_tracker(WandbAdapter(), "ours")
    raw_dir = root / "raw"
    raw_dir.mkdir()
    keep_wandb_local(raw_dir, offline=True)
    run = wandb.init(
        id="rawbench1",
        project=spec["project"],
        group=spec["group"],
        tags=spec["tags"],
        config=spec["config"],
        dir=str(raw_dir),
        mode="offline",
        resume="allow",
        reinit="create_new",
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True, save_code=False),
    )
    rows = [
        {"epoch": i, "loss": 1.0 / (i + 1), "accuracy": 0.5 + i / (2 * steps), "lr": 0.01}
        for i in range(steps)
    ]
    raw_log, ours_log = run.log, ours_tracker.log
    clock = time.perf_counter_ns
    ours: list[float] = []
    raw: list[float] = []
    step = 0
    for rep in range(reps + 1):  # rep 0 is the warm-up
        time.sleep(0.3)  # let wandb-core drain the previous block
        t_ours = t_raw = 0
        for i, row in enumerate(rows):
            # Step-by-step alternation, rotating who goes first, so both see the same state of
            # wandb-core and of the machine.
            if i % 2:
                t0 = clock()
                raw_log(row, step=step)
                t1 = clock()
                ours_log(row)
                t2 = clock()
                t_raw, t_ours = t_raw + t1 - t0, t_ours + t2 - t1
            else:
                t0 = clock()
                ours_log(row)
                t1 = clock()
                raw_log(row, step=step)
                t2 = clock()
                t_ours, t_raw = t_ours + t1 - t0, t_raw + t2 - t1
            step += 1
        if rep:
            ours.append(t_ours / 1e9)
            raw.append(t_raw / 1e9)
    ours_mirrors.finish(0, preempted=False)
    ours_tracker._journal.finish(0)
    ours_tracker._journal.close()
    run.finish()
    print(json.dumps({"ours": ours, "raw": raw}))


def run(opts: Any) -> list[Result]:
    scratch = Path(tempfile.mkdtemp(prefix="wandb-log-", dir=opts.cache))
    try:
        env = hermetic_env(scratch / "env", PYTHONPATH=str(REPO))
        reps = opts.reps * 3
        log(f"  wandb log: {reps} blocks of {opts.wandb_steps} steps, alternating per step")
        out = subprocess.run(
            [
                PYTHON,
                "-m",
                "bench.b4_wandb_log",
                str(opts.wandb_steps),
                str(reps),
                str(scratch / "runs"),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if out.returncode != 0:
            raise RuntimeError(f"wandb benchmark child failed:\n{out.stderr[-4000:]}")
        data = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    steps = opts.wandb_steps
    per_step = {k: [t / steps * 1e6 for t in v] for k, v in data.items()}  # µs per step
    result = make_result(
        "W&B offline log, per step",
        4,
        per_step["ours"],
        per_step["raw"],
        unit="µs/step",
        limit=LIMIT,
        notes="Tracker.log (journal + live W&B mirror) vs raw run.log(row, step=i), same kind "
        f"of offline run; {len(data['ours'])} blocks of {steps} steps, alternating step by step",
        extra={"steps_per_block": steps},
    )
    return [result]


if __name__ == "__main__":
    (Path(sys.argv[3])).mkdir(parents=True)
    _child(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
