"""Benchmark 11's experiment: 50 ms of CPU work per job, copied over the project's experiment.py.

Same signature as the template's `experiment(job, tracker)`. It computes for 50 ms of this
process's CPU time (not wall time: a loaded machine stretches both sides alike, and a parallel
run must still do all the work), logging one row and checkpointing every 10 ms of it, then
writes result.json as the template's experiment does.
"""

from __future__ import annotations

import json
import time
from typing import Any

WORK_SECONDS = 0.050  # CPU seconds per job
ROWS = 5


def _spin(seconds: float) -> int:
    """Busy arithmetic for `seconds` of this process's CPU time; returns a checksum."""
    end = time.process_time() + seconds
    total = 0
    while time.process_time() < end:
        for i in range(1000):
            total = (total + i * i) % 1_000_003
    return total


def experiment(job: Any, tracker: Any) -> None:
    state = tracker.load_checkpoint() or {"row": 0, "sum": 0}
    for row in range(state["row"], ROWS):
        state = {"row": row + 1, "sum": (state["sum"] + _spin(WORK_SECONDS / ROWS)) % 1_000_003}
        tracker.log({"row": row, "sum": state["sum"]})
        tracker.checkpoint(state)
    with open(job.fn("result.json"), "w", encoding="utf-8") as fh:
        json.dump({"sum": state["sum"], "rows": ROWS}, fh)
