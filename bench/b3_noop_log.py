"""Benchmark 3: noop backend `log` events per second vs a raw JSONL loop.

Ours: `Tracker.log(row)` of an attempt whose only backend is the journal (the noop backend is the
journal alone): metric validation, the step counter, the summary, and the journal writer's
timestamped, flushed JSON line (aexp/journal.py). Raw: `json.dumps` of the same event (without
timestamp) + `write` + `flush` on one open file. Both in this process, alternating, on the same
rows. Target: ours >= 0.5 x raw.
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
    from aexp.journal import JournalWriter, journal_path
    from aexp.tracker import Tracker

    writer = JournalWriter(journal_path(root, "bench0001"))
    writer.resume_run(attempt=1)  # the attempt's first event opens the file, as in run_lifecycle
    tracker = Tracker(job=None, run_id="bench0001", attempt=1, _journal=writer)
    log_ = tracker.log
    t0 = time.perf_counter()
    for row in data:
        log_(row)
    elapsed = time.perf_counter() - t0
    writer.finish(0)
    writer.close()
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
            notes="Tracker.log through the journal writer vs json.dumps+write+flush, one open file",
            extra={"events": len(data)},
        )
    ]
