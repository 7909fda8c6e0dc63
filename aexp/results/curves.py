"""A metric's curve per run: its values over the run's step axis, every attempt joined.

    curve = curve_of(read_journal(path), "loss")
    curve.steps, curve.values      the history rows that have "loss" (re-dos left out), in order
    curve.attempts                 the attempt that logged each point
    curve.breaks                   where an attempt ended without finishing the run

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
from typing import Any

from aexp.journal import Journal, read_journal

PREEMPTED, KILLED = "preempted", "killed"


@dataclass(frozen=True)
class Break:
    """Where an attempt ended without finishing the run (see the module docstring)."""

    step: int
    value: float
    attempt: int
    kind: str  # PREEMPTED or KILLED


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


def curve_of(journal: Journal, key: str) -> Curve:
    """The curve of metric `key` in `journal` (empty when the run never logged it)."""
    curve = Curve(key=key, run_id=journal.run_id)
    for step, value, attempt in journal.metric(key):
        number = _number(value)
        if number is None:
            continue
        if curve.steps and step <= curve.steps[-1]:  # an axis that went back (hand-edited)
            continue
        curve.steps.append(step)
        curve.values.append(number)
        curve.attempts.append(attempt)
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
        curve.breaks.append(Break(step, curve.value_at(step), attempt.number, kind))
    return curve


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


def load_curves(records: Iterable[Any], key: str) -> list[tuple[Any, Curve]]:
    """(record, curve of `key`) for each bound record whose journal has the metric, in the
    records' order; the journals are read here (one read per run)."""
    series = []
    for record in records:
        path = record.journal
        if path is None:
            continue
        try:
            journal = read_journal(path)
        except FileNotFoundError:
            continue
        curve = curve_of(journal, key)
        if curve.steps:
            series.append((record, curve))
    return series


__all__ = ["KILLED", "PREEMPTED", "Break", "Curve", "curve_of", "load_curves", "metric_keys"]
