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
from collections.abc import Iterable, Mapping, Sequence
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


_NUMBER_TYPES = (int, float)  # `type(v) in` this leaves booleans out


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

    @classmethod
    def of(cls, values: list[Any]) -> Aggregate:
        """The aggregate of a metric's values in history order."""
        if not values:
            return cls()
        numbers = [v for v in values if type(v) in _NUMBER_TYPES and v == v]
        if not numbers:
            return cls(len(values), values[0], values[-1])
        return cls(
            len(values),
            values[0],
            values[-1],
            len(numbers),
            _total(numbers),
            float(min(numbers)),
            float(max(numbers)),
        )

    def merge(self, later: Aggregate) -> Aggregate:
        """This aggregate followed by `later` (the rows appended to a journal since)."""
        if not later.count:
            return self
        if not self.count:
            return later
        lows = [v for v in (self.low, later.low) if v == v]
        highs = [v for v in (self.high, later.high) if v == v]
        return Aggregate(
            self.count + later.count,
            self.first,
            later.last,
            self.numbers + later.numbers,
            self.total + later.total,
            min(lows) if lows else math.nan,
            max(highs) if highs else math.nan,
        )

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


def _total(numbers: list[float]) -> float:
    """The exactly rounded sum (math.fsum); inf - inf gives NaN, as a running sum does."""
    try:
        return math.fsum(numbers)
    except (ValueError, OverflowError):
        return float(sum(float(n) for n in numbers))


def aggregates_of(rows: Sequence[Mapping[str, Any]], keys: Iterable[str]) -> dict[str, Aggregate]:
    """{key: Aggregate} of the `keys` the history `rows` (metrics dicts, in order) hold."""
    found = {}
    for key in keys:
        values = [row[key] for row in rows if key in row]
        if values:
            found[key] = Aggregate.of(values)
    return found


def aggregate(journal: Journal) -> dict[str, Aggregate]:
    """{metric key: its Aggregate} over the journal's history rows (every key)."""
    rows = [row.metrics for row in journal.history()]
    keys = dict.fromkeys(key for row in rows for key in row)
    return aggregates_of(rows, keys)


def reduce_metric(aggregates: Mapping[str, Aggregate], spec: MetricSpec) -> Any:
    """The value of `spec` from a run's aggregates; None when the run never logged the key."""
    agg = aggregates.get(spec.key)
    return None if agg is None else agg.value(spec.reduction)


__all__ = [
    "REDUCTIONS",
    "Aggregate",
    "MetricSpec",
    "aggregate",
    "aggregates_of",
    "parse_metric",
    "parse_metrics",
    "reduce_metric",
]
