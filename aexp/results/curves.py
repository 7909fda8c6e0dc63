"""A metric's curve per run: its values over the run's step axis, every attempt joined.

    curve = curve_of(read_journal(path), "loss")             x: the step
    curve = curve_of(read_journal(path), "loss", x="time")   x: running wall time, seconds
    curve = curve_of(read_journal(path), "loss", x="epoch")  x: another metric of the same row
    curve.steps, curve.values      the history rows that have "loss" (re-dos left out), in order
    curve.x                        each point's x (the step, the time or the other metric)
    curve.attempts                 the attempt that logged each point
    curve.breaks                   where an attempt ended without finishing the run

Wall time (`x="time"`) is the time the run spent running: seconds since its attempt started
(its `resume_run` event) plus the length of every earlier attempt (to its `finish`, or its
last row when it has none), so the hours a preempted run waited in the queue do not stretch
its curve. With another metric as x, rows without a numeric value of it are left out.

A break is `preempted` (the attempt was stopped by a signal and recorded it: SLURM's warning,
scancel, Ctrl-C) or `killed` (the attempt has no `finish` event and a later attempt followed:
SIGKILL, OOM, a node failure). Its step is the last step that attempt logged along the history
(or, for an attempt that logged nothing new, the last step before it), and its value the
metric's value at or before that step. The last attempt of a run that is still running is not a
break.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aexp.journal import Journal, read_journal

PREEMPTED, KILLED = "preempted", "killed"
STEP, TIME = "step", "time"  # the x axes that are not a metric


@dataclass(frozen=True)
class Break:
    """Where an attempt ended without finishing the run (see the module docstring)."""

    step: int
    value: float
    attempt: int
    kind: str  # PREEMPTED or KILLED
    x: float | None = None  # on the curve's x axis (None: at no point of it)


@dataclass
class Curve:
    """One metric of one run over its step axis. Values are floats (NaN and infinities kept;
    rows whose value is not a number are left out)."""

    key: str
    run_id: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    breaks: list[Break] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    x_axis: str = STEP

    def __len__(self) -> int:
        return len(self.steps)

    def value_at(self, step: int) -> float:
        """The value at `step`, or at the last point before it (NaN before the first point)."""
        index = bisect.bisect_right(self.steps, step) - 1
        return self.values[index] if index >= 0 else math.nan


def _number(value: Any) -> float | None:
    if type(value) is bool or not isinstance(value, int | float):
        return None
    return float(value)


def curve_of(journal: Journal, key: str, x: str = STEP) -> Curve:
    """The curve of metric `key` in `journal` over `x` (STEP, TIME or another metric's key;
    see the module docstring); empty when the run never logged it."""
    curve = Curve(key=key, run_id=journal.run_id, x_axis=x)
    clock = _running_time(journal) if x == TIME else None
    for row in journal.history():
        step = row.step
        if step is None or key not in row.metrics:
            continue
        number = _number(row.metrics[key])
        if number is None:
            continue
        if curve.steps and step <= curve.steps[-1]:  # an axis that went back (hand-edited)
            continue
        if x == STEP:
            where: float | None = step
        elif clock is not None:
            where = clock(row)
        else:
            where = _number(row.metrics.get(x))
        if where is None or where != where:
            continue
        curve.steps.append(step)
        curve.values.append(number)
        curve.attempts.append(row.attempt)
        curve.x.append(where)
    if not curve.steps:
        return curve
    attempts = journal.attempts
    for index, attempt in enumerate(attempts):
        later = index + 1 < len(attempts)
        if attempt.preempted:
            kind = PREEMPTED
        elif not attempt.finished and later:
            kind = KILLED
        else:
            continue
        step = attempt.last_step
        if step is None:  # nothing new logged: the axis stood where the previous attempt left it
            step = _last_before(attempts, index)
        if step is None or step < curve.steps[0]:
            continue
        index = bisect.bisect_right(curve.steps, step) - 1
        where = curve.x[index] if index >= 0 else None
        curve.breaks.append(Break(step, curve.value_at(step), attempt.number, kind, where))
    return curve


def _seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def _running_time(journal: Journal) -> Any:
    """A function of a history row: the seconds the run had been running when it was logged
    (module docstring); None for a row without a readable timestamp."""
    first_seen: dict[int, float] = {}
    last_seen: dict[int, float] = {}
    for row in journal.rows:
        when = _seconds(row.timestamp)
        if when is not None:
            first_seen[row.attempt] = min(when, first_seen.get(row.attempt, when))
            last_seen[row.attempt] = max(when, last_seen.get(row.attempt, when))
    starts: dict[int, float] = {}
    offsets: dict[int, float] = {}
    total = 0.0
    for attempt in journal.attempts:
        start = _seconds(attempt.started_at) or first_seen.get(attempt.number)
        if start is None:
            continue
        starts[attempt.number] = start
        offsets[attempt.number] = total
        end = _seconds(attempt.ended_at) or last_seen.get(attempt.number, start)
        total += max(0.0, end - start)

    def clock(row: Any) -> float | None:
        when = _seconds(row.timestamp)
        start = starts.get(row.attempt)
        if when is None or start is None:
            return None
        return offsets[row.attempt] + max(0.0, when - start)

    return clock


def _last_before(attempts: list[Any], index: int) -> int | None:
    """The last step logged by an attempt before `attempts[index]`."""
    for earlier in reversed(attempts[:index]):
        if earlier.last_step is not None:
            return earlier.last_step
    return None


def metric_keys(journal: Journal) -> list[str]:
    """The metric keys the run logged with a numeric value, in the order first logged."""
    keys: dict[str, None] = {}
    for row in journal.history():
        for key, value in row.metrics.items():
            if key not in keys and _number(value) is not None:
                keys[key] = None
    return list(keys)


def load_curves(records: Iterable[Any], key: str, x: str = STEP) -> list[tuple[Any, Curve]]:
    """(record, curve of `key` over `x`) for each bound record whose journal has the metric,
    in the records' order; the journals are read here (one read per run)."""
    series = []
    for record in records:
        path = record.journal
        if path is None:
            continue
        try:
            journal = read_journal(path)
        except FileNotFoundError:
            continue
        curve = curve_of(journal, key, x)
        if curve.steps:
            series.append((record, curve))
    return series


__all__ = [
    "KILLED",
    "PREEMPTED",
    "STEP",
    "TIME",
    "Break",
    "Curve",
    "curve_of",
    "load_curves",
    "metric_keys",
]
