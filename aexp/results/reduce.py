"""Metric columns: a metric's last value, or a reduction of it over the run's step axis.

    parse_metric("loss")      -> MetricSpec("loss", "last")   the binding's summary (no journal)
    parse_metric("loss:min")  -> MetricSpec("loss", "min")    read from the run's journal

Reductions run over the run's history (every attempt's rows joined, re-dos left out: what the
trackers receive, `Journal.history`):

    first, last   the value of the first / last row that has the metric (any JSON value)
    min, max      over the numeric values (booleans and strings left out; NaN left out, so a
                  run that diverged still has its best value); NaN when there are none
    mean          the arithmetic mean of the same values
    count         how many rows have the metric

`last` without a reduction (`loss`) reads the binding's `summary`, written when each attempt
ends: for a running attempt it lags behind the journal. `loss:last` reads the journal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aexp.journal import Journal
from aexp.results.select import SelectionError

REDUCTIONS = ("last", "first", "min", "max", "mean", "count")


@dataclass(frozen=True)
class MetricSpec:
    """A metric column: `key` reduced by `reduction`; `journal` says whether it needs the
    journal (anything but a bare key)."""

    key: str
    reduction: str = "last"
    journal: bool = False

    @property
    def name(self) -> str:
        """The column's name: `loss` or `loss:min`."""
        return f"{self.key}:{self.reduction}" if self.journal else self.key


def parse_metric(text: str) -> MetricSpec:
    """`KEY` or `KEY:REDUCTION` (REDUCTIONS). Raises SelectionError for an empty key or an
    unknown reduction."""
    text = text.strip()
    key, sep, reduction = text.rpartition(":")
    if not sep:
        key, reduction = text, ""
    if not key:
        raise SelectionError(f"metric {text!r} has no name; write e.g. loss or loss:min.")
    if not sep:
        return MetricSpec(key)
    if reduction not in REDUCTIONS:
        raise SelectionError(
            f"metric {text!r}: unknown reduction {reduction!r}; use one of "
            f"{', '.join(REDUCTIONS)} (e.g. {key}:min)."
        )
    return MetricSpec(key, reduction, journal=True)


def parse_metrics(texts: Iterable[str]) -> list[MetricSpec]:
    """Comma-separated metric specs (`loss,accuracy:max`), each column once."""
    specs: dict[str, MetricSpec] = {}
    for text in texts:
        for part in text.split(","):
            if part.strip():
                spec = parse_metric(part)
                specs.setdefault(spec.name, spec)
    return list(specs.values())


def _numeric(value: Any) -> float | None:
    if type(value) is bool or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass
class Aggregate:
    """The reductions of one metric over a run's history (see the module docstring)."""

    count: int = 0
    first: Any = None
    last: Any = None
    numbers: int = 0  # numeric, non-NaN values
    total: float = 0.0
    low: float = math.nan
    high: float = math.nan

    def add(self, value: Any) -> None:
        if self.count == 0:
            self.first = value
        self.count += 1
        self.last = value
        number = _numeric(value)
        if number is None or number != number:
            return
        if self.numbers == 0:
            self.low = self.high = number
        else:
            self.low = min(self.low, number)
            self.high = max(self.high, number)
        self.numbers += 1
        self.total += number

    def value(self, reduction: str) -> Any:
        if reduction == "count":
            return self.count
        if reduction in ("first", "last"):
            return getattr(self, reduction)
        if not self.numbers:
            return math.nan if self.count else None
        if reduction == "min":
            return self.low
        if reduction == "max":
            return self.high
        return self.total / self.numbers  # inf with an inf among the values; NaN for inf - inf

    def as_json(self) -> list[Any]:
        return [self.count, self.first, self.last, self.numbers, self.total, self.low, self.high]

    @classmethod
    def from_json(cls, data: list[Any]) -> Aggregate:
        return cls(*data)


def aggregate(journal: Journal) -> dict[str, Aggregate]:
    """{metric key: its Aggregate} over the journal's history rows."""
    aggregates: dict[str, Aggregate] = {}
    for row in journal.history():
        for key, value in row.metrics.items():
            agg = aggregates.get(key)
            if agg is None:
                agg = aggregates[key] = Aggregate()
            agg.add(value)
    return aggregates


def reduce_metric(aggregates: Mapping[str, Aggregate], spec: MetricSpec) -> Any:
    """The value of `spec` from a run's aggregates; None when the run never logged the key."""
    agg = aggregates.get(spec.key)
    return None if agg is None else agg.value(spec.reduction)


__all__ = [
    "REDUCTIONS",
    "Aggregate",
    "MetricSpec",
    "aggregate",
    "parse_metric",
    "parse_metrics",
    "reduce_metric",
]
