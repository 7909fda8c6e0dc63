"""Benchmark 3: noop backend `log` events per second vs a raw JSONL loop.

Ours: `Tracker.log(row)` on a run opened by the noop adapter (what an experiment calls): metric
validation, the step counter, the summary, and the adapter's timestamped, flushed JSONL line.
Raw: `json.dumps` of the same event (without timestamp) + `write` + `flush` on one open file.
Both in this process, alternating, on the same rows. Target: ours >= 0.5 x raw.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Result, alternate, log, make_result

LIMIT = 0.5


def rows(n: int) -> list[dict[str, Any]]:
    """Typical rows of an experiment: an int counter and a few float metrics."""
    return [
        {"epoch": i, "loss": 1.0 / (i + 1), "accuracy": 0.5 + i / (2 * n), "lr": 0.01}
        for i in range(n)
    ]


def ours_rate(data: list[dict[str, Any]], root: Path) -> float:
    from aexp.lifecycle import Tracker
    from aexp.trackers.noop import NoopAdapter

    adapter = NoopAdapter(log_root=root)
    handle = adapter.init_run(
        project="bench", group="H/E/c", tags=[], config={}, notes=None, offline=True
    )
    tracker = Tracker(job=None, run_id=handle.id, _adapter=adapter, _handle=handle)
    log_ = tracker.log
    t0 = time.perf_counter()
    for row in data:
        log_(row)
    elapsed = time.perf_counter() - t0
    adapter.finish(handle)
    return len(data) / elapsed


def raw_rate(data: list[dict[str, Any]], root: Path) -> float:
    path = root / "raw.jsonl"
    dumps = json.dumps
    with open(path, "a", encoding="utf-8") as fh:
        t0 = time.perf_counter()
        for step, row in enumerate(data):
            fh.write(dumps({"event": "log", "metrics": row, "step": step}) + "\n")
            fh.flush()
        elapsed = time.perf_counter() - t0
    return len(data) / elapsed


def run(opts: Any) -> list[Result]:
    data = rows(opts.log_events)
    scratch = Path(tempfile.mkdtemp(prefix="noop-log-", dir=opts.cache))
    try:
        counter = iter(range(10**6))

        def fresh() -> Path:
            path = scratch / str(next(counter))
            path.mkdir()
            return path

        reps = opts.reps * 2
        log(f"  noop log: {len(data)} events x {reps} alternating repetitions")
        a, b = alternate(
            lambda: ours_rate(data, fresh()), lambda: raw_rate(data, fresh()), reps, warmup=1
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [
        make_result(
            "noop log events/s vs raw JSONL",
            3,
            a,
            b,
            unit="events/s",
            limit=LIMIT,
            higher_is_better=True,
            notes="Tracker.log through NoopAdapter vs json.dumps+write+flush on one open file",
            extra={"events": len(data)},
        )
    ]
