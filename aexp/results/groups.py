"""Configurations over seeds: the runs of a sweep grouped by state-point keys, each metric's
spread over the finished runs of each group (aexp.results.spread).

    groups = group_records(iter_records(root), keys=None, seed_keys=("seed",),
                           metrics=parse_metrics(["loss:min"]), stats=JournalStats(root))
    groups.keys          ["lr", "hidden"]         the keys that tell configurations apart
    groups.groups[0]     Group(config={"lr": 0.01, "hidden": 64}, runs=3, states={...},
                               values={"loss:min": [...]}, ...)
    groups.groups[0].spread("loss:min")   -> Spread(n=3, mean=..., std=..., ci_low=..., ...)

`keys=None` groups by every state-point key except the seed keys (`[results] seed_keys`,
`seed` by default); the keys shown are those whose value differs between the groups. Named keys
group by those alone (a job without one of them is grouped under `None` for it); naming a key no
selected job has is an error.

A group counts its runs by state (`states`); its statistics are over its FINISHED runs only: a
failed, preempted or running run is counted and shown, never averaged in (a crashed seed's
loss is not a result). A finished run without a finite value of a metric (never logged, NaN)
is counted in that metric's `left_out`.

Memory: one Group per configuration, holding each finished run's value of each metric (8 bytes
each) and, with `keep_runs`, the job id, state and values of every run (for `aexp best`).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aexp.results.records import JobRecord
from aexp.results.reduce import MetricSpec
from aexp.results.select import SelectionError, flatten, format_value, lookup, same_value
from aexp.results.spread import Spread, finite, spread
from aexp.results.stats import JournalStats
from aexp.results.table import rank, sort_values
from aexp.schema import FAILED, FINISHED, PREEMPTED

COUNTS = ("runs", FINISHED, FAILED, PREEMPTED)  # the counts every group shows
AGGREGATES = ("mean", "std", "n", "ci95_low", "ci95_high", "min", "max")
_ABSENT = object()


@dataclass
class RunValues:
    """One run of a group, as `aexp best` lists it."""

    job_id: str
    state: str
    statepoint: dict[str, Any]
    values: dict[str, Any]


@dataclass
class Group:
    """One configuration: its key values, how many runs it has in each state, and the values of
    each metric over its finished runs."""

    config: dict[str, Any]
    runs: int = 0
    states: dict[str, int] = field(default_factory=dict)
    values: dict[str, array] = field(default_factory=dict)  # finite values, finished runs
    left_out: dict[str, int] = field(default_factory=dict)  # finished runs without one
    members: list[RunValues] = field(default_factory=list)  # with keep_runs
    metric_names: tuple[str, ...] = ()
    _spreads: dict[str, Spread] = field(default_factory=dict, repr=False)

    def count(self, state: str) -> int:
        return self.runs if state == "runs" else self.states.get(state, 0)

    def spread(self, name: str) -> Spread:
        """The Spread of metric column `name` over the group's finished runs."""
        if name not in self._spreads:
            base = spread(self.values.get(name, ()))
            left = self.left_out.get(name, 0)
            self._spreads[name] = Spread(
                base.n, base.mean, base.std, base.ci_low, base.ci_high, base.low, base.high, left
            )
        return self._spreads[name]

    def label(self, keys: Sequence[str] | None = None) -> str:
        """`lr=0.01, hidden=64` (the given keys, default all of the group's)."""
        keys = list(self.config) if keys is None else keys
        parts = [f"{k}={'-' if self.config.get(k) is None else format_value(self.config[k])}"
                 for k in keys]  # fmt: skip
        return ", ".join(parts) or "all runs"

    def aggregate(self, column: str) -> Any:
        """A count (`runs`, `finished`, ...) or `<metric>.<aggregate>` (AGGREGATES; the metric
        name alone is its mean)."""
        if column in COUNTS:
            return self.count(column)
        name, what = column, "mean"
        if column not in self.metric_names:
            name, _, what = column.rpartition(".")
        s = self.spread(name)
        return {
            "mean": s.mean,
            "std": s.std,
            "n": s.n,
            "ci95_low": s.ci_low,
            "ci95_high": s.ci_high,
            "min": s.low,
            "max": s.high,
        }[what]


@dataclass
class Groups:
    """The configurations of a selection, in order (see the module docstring)."""

    keys: list[str]  # the keys shown: those that tell the groups apart
    group_by: list[str]  # what was asked (empty: every key but the seeds)
    seed_keys: list[str]
    metrics: list[MetricSpec]
    groups: list[Group]
    runs: int = 0
    logged: list[str] = field(default_factory=list)  # metric keys in the runs' summaries


def _hashable(value: Any) -> Any:
    """A dict key for a JSON value that keeps JSON's equality (1 == 1.0, True != 1)."""
    if value is _ABSENT or value is None:
        return ("null",)
    if type(value) is bool:
        return ("bool", value)
    if type(value) in (int, float):
        return ("number", value)
    if type(value) is str:
        return ("string", value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


def group_records(
    records: Iterable[JobRecord],
    *,
    keys: Sequence[str] | None = None,
    seed_keys: Sequence[str] = ("seed",),
    metrics: Sequence[MetricSpec] = (),
    stats: JournalStats | None = None,
    keep_runs: bool = False,
    statistics_over: Sequence[str] = (FINISHED,),
) -> Groups:
    """Group `records` into configurations (module docstring). Journals are read for the
    journal specs of the finished runs only. Raises SelectionError for a named key that no
    record has."""
    stats = stats or JournalStats(None)
    metrics = list(metrics)
    names = tuple(m.name for m in metrics)
    seeds = set(seed_keys)
    by_config: dict[tuple[Any, ...], Group] = {}
    seen_keys: dict[str, None] = {}
    logged: dict[str, None] = {}
    total = 0
    for record in records:
        total += 1
        if record.binding and record.binding.get("summary"):
            logged.update(dict.fromkeys(record.binding["summary"]))
        flat = flatten(record.statepoint)
        seen_keys.update(dict.fromkeys(flat))
        if keys is None:
            config = {k: v for k, v in flat.items() if k not in seeds}
        else:
            config = {k: flat[k] if k in flat else lookup(record.statepoint, k, None) for k in keys}
        ident = tuple(sorted((k, _hashable(v)) for k, v in config.items()))
        group = by_config.get(ident)
        if group is None:
            group = by_config[ident] = Group(config=config, metric_names=names)
        group.runs += 1
        state = record.state
        group.states[state] = group.states.get(state, 0) + 1
        values: dict[str, Any] = {}
        if state in statistics_over or keep_runs:
            values = stats.values(record, metrics)
        if state in statistics_over:
            for name, value in values.items():
                if finite(value):
                    group.values.setdefault(name, array("d")).append(float(value))
                else:
                    group.left_out[name] = group.left_out.get(name, 0) + 1
        if keep_runs:
            group.members.append(RunValues(record.job_id, state, flat, values))
    if keys is not None:
        unknown = [k for k in keys if k not in seen_keys and not _nested(k, seen_keys)]
        if unknown and total:
            raise SelectionError(
                f"--group-by {','.join(keys)}: no selected job has the state-point key "
                f"{unknown[0]!r}; keys: {', '.join(seen_keys) or 'none'}."
            )
    groups = list(by_config.values())
    shown = list(keys) if keys is not None else _differing(groups, list(seen_keys))
    for group in groups:  # every group lists the same keys, in the same order
        group.config = {k: group.config.get(k) for k in shown}
    groups.sort(key=lambda g: [rank(v) if v is not None else (9, "") for v in g.config.values()])
    return Groups(
        keys=shown,
        group_by=list(keys or ()),
        seed_keys=list(seed_keys),
        metrics=metrics,
        groups=groups,
        runs=total,
        logged=list(logged),
    )


def _nested(key: str, seen: dict[str, None]) -> bool:
    return any(k.startswith(key + ".") for k in seen)


def _differing(groups: list[Group], order: list[str]) -> list[str]:
    """The keys whose value is not the same in every group (a key some group lacks counts)."""
    if len(groups) < 2:
        return []
    differing = []
    for key in order:
        values = [g.config.get(key, _ABSENT) for g in groups]
        if any(not same_value(values[0], v) for v in values[1:]):
            differing.append(key)
    return differing


def sort_groups(groups: Groups, text: str | None) -> None:
    """Order `groups.groups` by `text`: a key, a count or an aggregate (`loss:min`, the mean;
    `loss:min.std`, ...), `-` first for descending; groups without a value last. Raises
    SelectionError for a name that is none of those."""
    if not text:
        return
    descending = text.startswith("-")
    name = text[1:] if descending else text
    key: Callable[[Group], Any]
    if name in groups.keys:
        key = lambda g: g.config.get(name)  # noqa: E731
    elif name in COUNTS or _metric_column(groups, name):
        key = lambda g: g.aggregate(name)  # noqa: E731
    else:
        names = [m.name for m in groups.metrics]
        aggregates = [f"{names[0]}.{a}" for a in AGGREGATES] if names else []
        raise SelectionError(
            f"--sort {text}: no group key, count or aggregate is named {name!r} (keys: "
            f"{', '.join(groups.keys) or 'none'}; counts: {', '.join(COUNTS)}"
            + (f"; aggregates: {', '.join(names)}, {', '.join(aggregates)}" if names else "")
            + ")."
        )
    groups.groups = sort_values(groups.groups, key, descending)


def _metric_column(groups: Groups, name: str) -> bool:
    names = {m.name for m in groups.metrics}
    if name in names:
        return True
    base, _, what = name.rpartition(".")
    return base in names and what in AGGREGATES


__all__ = [
    "AGGREGATES",
    "COUNTS",
    "Group",
    "Groups",
    "RunValues",
    "group_records",
    "sort_groups",
]
