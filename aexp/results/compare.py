"""Two jobs, or two configurations, side by side: where their state points differ, each metric
on both sides and the difference (aexp compare A B).

    a = Side.of_job(record)                      one run: its values, whatever its state
    b = Side.of_config("lr=0.01", records)       the runs of a configuration: spreads over its
                                                 finished runs (aexp.results.spread)
    comparison = compare(a, b, metrics=None, stats=JournalStats(root))
    comparison.differs   {key: (A's value, B's value)}   keys whose value is not the same
    comparison.same      {key: value}                    keys both share
    comparison.metrics   [MetricRow(name, a=Spread, b=Spread, gap=Gap)]   B - A

A side's state point is what all its runs share; keys whose value differs between a side's
own runs (its seeds) are listed in `varies`, not compared. Metrics default to every key the
runs of both sides logged (their last values, from the job documents); `metrics` may name
reductions (`loss:min`, read from the journals). A job's value counts whatever the job's
state (a failed job compared with a finished one shows what each logged); a configuration's
statistics are over its finished runs, as in `aexp runs --group-by`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aexp.results.records import JobRecord
from aexp.results.reduce import MetricSpec, parse_metric
from aexp.results.select import VaryingKeys, flatten, same_value
from aexp.results.spread import Gap, Spread, gap, spread
from aexp.results.stats import JournalStats
from aexp.schema import FINISHED

_ABSENT = object()


@dataclass
class Side:
    """One side of a comparison: a job (`kind` "job") or a configuration's runs."""

    label: str
    kind: str
    records: list[JobRecord]
    statepoint: dict[str, Any] = field(default_factory=dict)  # what all its runs share
    varies: list[str] = field(default_factory=list)  # keys that differ between its runs

    @classmethod
    def of_job(cls, record: JobRecord) -> Side:
        return cls(f"job {record.job_id[:8]}", "job", [record], flatten(record.statepoint))

    @classmethod
    def of_config(cls, label: str, records: Sequence[JobRecord]) -> Side:
        seen = VaryingKeys()
        for record in records:
            seen.add(flatten(record.statepoint))
        varies = seen.varying()
        first = flatten(records[0].statepoint) if records else {}
        shared = {k: v for k, v in first.items() if k not in varies}
        return cls(label, "configuration", list(records), shared, varies)

    def counted(self) -> list[JobRecord]:
        """The runs whose values count: the job itself, or a configuration's finished runs."""
        if self.kind == "job":
            return self.records
        return [r for r in self.records if r.state == FINISHED]

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record.state] = counts.get(record.state, 0) + 1
        return dict(sorted(counts.items()))


@dataclass
class MetricRow:
    """One metric on both sides; `gap` is B's mean minus A's (Welch's interval where both
    sides have two values or more)."""

    name: str
    a: Spread
    b: Spread
    gap: Gap


@dataclass
class Comparison:
    a: Side
    b: Side
    differs: dict[str, tuple[Any, Any]]
    same: dict[str, Any]
    metrics: list[MetricRow]


def _logged(records: Sequence[JobRecord]) -> list[str]:
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.summary.items():
            if type(value) in (int, float):
                keys.setdefault(key, None)
    return list(keys)


def compare(
    a: Side,
    b: Side,
    *,
    metrics: Sequence[MetricSpec] | None = None,
    stats: JournalStats | None = None,
) -> Comparison:
    """A and B side by side (module docstring). `metrics=None`: every metric key either side's
    runs logged (their last values)."""
    stats = stats or JournalStats(None)
    differs: dict[str, tuple[Any, Any]] = {}
    same: dict[str, Any] = {}
    for key in dict.fromkeys([*a.statepoint, *b.statepoint]):
        if key in a.varies or key in b.varies:
            continue
        left, right = a.statepoint.get(key, _ABSENT), b.statepoint.get(key, _ABSENT)
        if left is not _ABSENT and right is not _ABSENT and same_value(left, right):
            same[key] = left
        else:
            differs[key] = (None if left is _ABSENT else left, None if right is _ABSENT else right)
    if metrics is None:
        metrics = [parse_metric(key) for key in _logged([*a.counted(), *b.counted()])]
    rows = []
    values = {id(side): [stats.values(r, metrics) for r in side.counted()] for side in (a, b)}
    for spec in metrics:
        left = spread(v[spec.name] for v in values[id(a)])
        right = spread(v[spec.name] for v in values[id(b)])
        rows.append(MetricRow(spec.name, left, right, gap(left, right)))
    return Comparison(a, b, differs, same, rows)


__all__ = ["Comparison", "MetricRow", "Side", "compare"]
