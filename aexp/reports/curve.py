"""A metric's history for an agent: `aexp.curve/1`, downsampled to a bound.

The curve is aexp.results.curves' (`curve_of`: the run's journal, attempts joined, re-done steps
left out). An agent's context is small: a run of 100,000 steps is cut to at most `max_points`
points, the lowest and the highest value of each of `max_points // 2` runs of consecutive
steps, in step order, so a spike or a dip survives the cut (a stride would skip it).
"""

from __future__ import annotations

import math
from typing import Any

from aexp.binding import get_binding
from aexp.contract import document
from aexp.errors import BindingError
from aexp.journal import journal_path, read_journal

CURVE = "aexp.curve/1"
MAX_POINTS = 500


def _number(value: float) -> Any:
    """Strict JSON: non-finite values as the strings "NaN", "Infinity", "-Infinity"."""
    if math.isfinite(value):
        return value
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def downsample(steps: list[int], values: list[float], bound: int) -> list[tuple[int, float]]:
    """At most `bound` (>= 2) points of the curve: all of them when they fit, else the lowest
    and highest of each of `bound // 2` runs of consecutive points, in step order."""
    points = list(zip(steps, values, strict=True))
    if len(points) <= bound:
        return points
    buckets = bound // 2
    out: list[tuple[int, float]] = []
    for b in range(buckets):
        part = points[b * len(points) // buckets : (b + 1) * len(points) // buckets]
        ordered = [p for p in part if p[1] == p[1]] or part  # NaN is neither low nor high
        low = min(ordered, key=lambda p: p[1])
        high = max(ordered, key=lambda p: p[1])
        out.extend(sorted({low, high}))
    return out


def curve_document(job: Any, metric: str, *, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """`metric` of the run `job` is bound to, as `aexp.curve/1`. Raises BindingError for a job
    without a run or a metric the run never logged (naming the ones it did)."""
    from aexp.results.curves import curve_of, metric_keys

    if max_points < 2:
        raise BindingError(f"max_points must be at least 2, not {max_points}.")
    binding = get_binding(job)
    if binding is None:
        raise BindingError(f"job {job.id} is not bound to a run yet: it has no curve.")
    journal = read_journal(journal_path(job.path, binding["run_id"]))
    keys = metric_keys(journal)
    if metric not in keys:
        known = ", ".join(keys) or "none yet"
        raise BindingError(
            f"job {job.id}'s run {binding['run_id']} never logged {metric!r}; it logged: {known}."
        )
    curve = curve_of(journal, metric)
    points = downsample(curve.steps, curve.values, max_points)
    return document(
        CURVE,
        job_id=job.id,
        run_id=binding["run_id"],
        metric=metric,
        total=len(curve),
        downsampled=len(points) < len(curve),
        points=[[step, _number(value)] for step, value in points],
        breaks=[
            {"step": b.step, "value": _number(b.value), "attempt": b.attempt, "kind": b.kind}
            for b in curve.breaks
        ],
        metrics=keys,
    )


__all__ = ["CURVE", "MAX_POINTS", "curve_document", "downsample"]
