"""Benchmark 7's trivial experiment: about 1 ms of work, the same file on both sides.

Copied over the template's experiment.py in the generated project, so `python project.py run`
and the bare FlowProject (bench/baselines/sweep.py, which imports `experiment` from
experiment.py) run exactly this. What a short job does: resume from its checkpoint, a few
rows of metrics, one checkpoint, result.json. The work is a fixed loop of arithmetic (about
1 ms on the benchmark machine), so the sweep measures what running a job costs, not the job.
"""

from __future__ import annotations

import json
import math
from typing import Any

ROWS = 5
# Iterations of the arithmetic loop per row: ~0.2 ms a row in CPython 3.11 on the benchmark machine.
WORK_PER_ROW = 1_200


def experiment(job: Any, tracker: Any) -> None:
    """Log ROWS rows of metrics, checkpoint, write result.json into the job's workspace."""
    state = tracker.load_checkpoint() or {"row": 0, "total": 0.0}
    seed = float(job.sp.get("seed", 0))
    total = state["total"]
    for row in range(state["row"], ROWS):
        acc = 0.0
        for i in range(WORK_PER_ROW):
            acc += math.sin(seed + row + i * 1e-3)
        total += acc
        tracker.log({"loss": 1.0 / (row + 1), "acc": acc / WORK_PER_ROW})
    tracker.checkpoint({"row": ROWS, "total": total})
    with open(job.fn("result.json"), "w", encoding="utf-8") as fh:
        json.dump({"total": total, "rows": ROWS}, fh)
