"""The runs table: one row per job, with state-point columns, metric columns and the run's own.

    table = build_table(iter_records(root), params=None, metrics=parse_metrics(["loss:min"]),
                        sort="-loss:min", stats=JournalStats(root))
    table.columns        ["job", "lr", "seed", "group", "backend", "run", "state", "synced",
                          "loss:min", "url"]
    table.values()       one list per row, in `columns` order
    table.rows           the same as one dict per row: {column: value}

Columns, in this order:
    job                               the job id
    <params>                          state-point values (dotted keys for nested ones); by default
                                      every key whose value varies across the rows
    group, backend, run, state, synced   the run as today's `aexp runs` shows it
    <metrics>                         the metric specs asked for (aexp.results.reduce)
    url                               the primary backend's run URL (once known)

`sort` names a column (or any state-point key or metric spec, shown or not); a leading `-`
sorts descending. Rows without a value (None, NaN) go last either way. The default order is
group, then job id.

The records are read one at a time and only what the table shows is kept of each (its cells,
strings shared between rows): memory grows with the rows shown, not with the documents read.
Each run's journal is read once, for the metric specs that need it, and only those are reduced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aexp.results.records import JobRecord
from aexp.results.reduce import MetricSpec, parse_metric
from aexp.results.select import SelectionError, VaryingKeys, flatten
from aexp.results.stats import JournalStats
from aexp.state import STALLED

RUN_COLUMNS = ("group", "backend", "run", "state", "synced")
# Columns a sort may name besides the shown ones (and their aliases).
_RECORD_COLUMNS: dict[str, Callable[[JobRecord], Any]] = {
    "job": lambda r: r.job_id,
    "job_id": lambda r: r.job_id,
    "group": lambda r: r.group,
    "backend": lambda r: r.backend_label,
    "run": lambda r: r.run_id,
    "run_id": lambda r: r.run_id,
    "state": lambda r: r.shown,
    "synced": lambda r: r.synced,
    "url": lambda r: r.url,
    "status": lambda r: r.status,
    "attempts": lambda r: (r.binding or {}).get("attempts"),
    "exit_code": lambda r: (r.binding or {}).get("exit_code"),
}
_MISSING = object()
# A row: (job id, (its keys' layout, its state-point values in that layout's order), group,
# backend, run, state, synced, url,
# metric values, sort value, details)
_JOB, _SP, _RUN, _URL, _METRICS, _SORT, _DETAILS = 0, 1, 2, 7, 8, 9, 10


def missing(value: Any) -> bool:
    """No value: None, NaN (or the sentinel of a state-point key a job lacks)."""
    return value is None or value is _MISSING or (isinstance(value, float) and math.isnan(value))


def rank(value: Any) -> tuple[int, Any]:
    """Values of different JSON types in one order: numbers, strings, then anything else."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    import json

    return (2, json.dumps(value, sort_keys=True, default=str))


def sort_values(items: list[Any], key: Callable[[Any], Any], descending: bool) -> list[Any]:
    """`items` ordered by `key(item)`; items without a value last, in either direction."""
    values = [(key(item), item) for item in items]
    present = [(v, item) for v, item in values if not missing(v)]
    absent = [item for v, item in values if missing(v)]
    present.sort(key=lambda pair: rank(pair[0]), reverse=descending)
    return [item for _, item in present] + absent


class Shared:
    """One object per distinct string: rows of one sweep repeat the same group, state, backend
    and state-point strings, which a JSON parse makes anew for every job."""

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if type(value) is str:
            return self._strings.setdefault(value, value)
        return value


@dataclass
class _Sort:
    """What `--sort` names, settled before the rows are read where it can be."""

    text: str
    name: str
    descending: bool
    metric: int | None = None  # index into the row's metric values
    column: Callable[[JobRecord], Any] | None = None
    hidden: MetricSpec | None = None  # a metric not shown, or a state-point key (decided last)


@dataclass
class Table:
    """The rows of a runs table (see the module docstring) and their columns."""

    params: list[str]
    metrics: list[MetricSpec]
    keys: list[str] = field(default_factory=list)  # every state-point key, in the rows' order
    logged: list[str] = field(default_factory=list)  # metric keys in the runs' summaries
    _rows: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    # The distinct orders of keys the state points have (a sweep has one or a few): each row
    # refers to its layout and keeps only its values.
    _layouts: list[dict[str, int]] = field(default_factory=list, repr=False)

    def _value(self, row: tuple[Any, ...], key: str) -> Any:
        layout, values = row[_SP]
        position = self._layouts[layout].get(key)
        return None if position is None else values[position]

    @property
    def columns(self) -> list[str]:
        return ["job", *self.params, *RUN_COLUMNS, *(m.name for m in self.metrics), "url"]

    def __len__(self) -> int:
        return len(self._rows)

    def has_value(self, spec: MetricSpec) -> bool:
        """Whether some row has a value of metric column `spec` (which the table shows)."""
        i = [m.name for m in self.metrics].index(spec.name)
        return any(row[_METRICS][i] is not None for row in self._rows)

    def values(self) -> Iterator[list[Any]]:
        """Each row's values in `columns` order."""
        for row in self._rows:
            params = [self._value(row, key) for key in self.params]
            yield [row[_JOB], *params, *row[_RUN:_URL], *row[_METRICS], row[_URL]]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One dict per row: {column: value}."""
        columns = self.columns
        return [dict(zip(columns, values, strict=True)) for values in self.values()]

    def details(self) -> Iterator[tuple[list[Any], dict[str, Any]]]:
        """(values, the row's details) per row: what `build_table(details=True)` kept."""
        for row, values in zip(self._rows, self.values(), strict=True):
            yield values, row[_DETAILS] or {}


def _details(record: JobRecord) -> dict[str, Any]:
    """The fields of a row's JSON object that are not table columns."""
    binding = record.binding or {}
    return {
        "backend": record.backend,
        "backends": record.backends,
        "offline": record.offline,
        "urls": record.urls,
        "synced_at": binding.get("synced_at"),
        "status": record.status,
        "attempts": binding.get("attempts"),
        "exit_code": binding.get("exit_code"),
        "state": record.state,
        "stalled": record.shown == STALLED,
        "experiment_id": record.statepoint.get("experiment_id"),
        "hypothesis_id": record.statepoint.get("hypothesis_id"),
    }


def _plan_sort(text: str | None, metrics: Sequence[MetricSpec], params: Sequence[str] | None):
    if not text:
        return None
    descending = text.startswith("-")
    name = text[1:] if descending else text
    if not name:
        raise SelectionError("--sort needs a column name (e.g. --sort lr or --sort -loss).")
    plan = _Sort(text, name, descending)
    names = [m.name for m in metrics]
    if name in names:
        plan.metric = names.index(name)
    elif params is not None and name in params:
        pass  # a shown state-point key
    elif name in _RECORD_COLUMNS:
        plan.column = _RECORD_COLUMNS[name]
    else:
        try:
            plan.hidden = parse_metric(name)
        except SelectionError:
            plan.hidden = None  # only a state-point key can be meant (checked at the end)
    return plan


def build_table(
    records: Iterable[JobRecord],
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[MetricSpec] = (),
    sort: str | None = None,
    stats: JournalStats | None = None,
    details: bool = False,
) -> Table:
    """The table of `records` (see the module docstring). `params=None`: the varying keys.
    `details`: keep each row's other fields too (`Table.details`, for JSON).

    Journals are read only for metric specs that need them, through `stats` (cached for long
    journals when it has a project root). Raises SelectionError for a sort key that names
    nothing.
    """
    stats = stats or JournalStats(None)
    metrics = list(metrics)
    plan = _plan_sort(sort, metrics, params)
    hidden = plan.hidden if plan is not None else None
    specs = [*metrics, *([hidden] if hidden is not None and hidden not in metrics else [])]
    logged: dict[str, None] = {}
    table = Table(params=list(params) if params is not None else [], metrics=metrics)
    shared = Shared()
    seen = VaryingKeys()
    layouts: dict[tuple[str, ...], int] = {}
    for record in records:
        flat = flatten(record.statepoint)
        seen.add(flat)
        order = tuple(flat)
        layout = layouts.get(order)
        if layout is None:
            layout = layouts[order] = len(layouts)
            table._layouts.append({key: i for i, key in enumerate(order)})
        sp = (layout, tuple(shared(value) for value in flat.values()))
        values = stats.values(record, specs) if specs else {}
        cells = tuple(values[m.name] for m in metrics)
        sort_value = None
        if plan is not None:
            if plan.column is not None:
                sort_value = plan.column(record)
            elif hidden is not None:
                sort_value = values[hidden.name]
        if record.binding and record.binding.get("summary"):
            logged.update(dict.fromkeys(record.binding["summary"]))
        table._rows.append(
            (
                record.job_id,
                sp,
                shared(record.group),
                shared(record.backend_label),
                record.run_id,
                shared(record.shown),
                record.synced,
                record.url,
                cells,
                sort_value,
                _details(record) if details else None,
            )
        )
    table.logged = list(logged)
    table._rows.sort(key=lambda row: (row[_RUN] or "", row[_JOB]))
    # Keys in the order the rows, as shown, first have them (not the order jobs were read in).
    orders = list(layouts)
    used = dict.fromkeys(row[_SP][0] for row in table._rows)
    table.keys = list(dict.fromkeys(key for layout in used for key in orders[layout]))
    if params is None:
        varying = set(seen.varying())
        table.params = [key for key in table.keys if key in varying]
    if plan is not None:
        table._rows = sort_values(table._rows, _sort_key(plan, table), plan.descending)
    return table


def _sort_key(plan: _Sort, table: Table) -> Callable[[tuple[Any, ...]], Any]:
    """How to read a row's sort value, once every row is known. Raises SelectionError."""
    if plan.metric is not None:
        return lambda row: row[_METRICS][plan.metric]
    if plan.column is not None:
        return lambda row: row[_SORT]
    if plan.name in table.keys:  # a state-point key, shown or not
        return lambda row: table._value(row, plan.name)
    if plan.hidden is not None and (plan.hidden.journal or plan.hidden.key in table.logged):
        return lambda row: row[_SORT]
    if plan.hidden is None and ":" in plan.name:
        parse_metric(plan.name)  # says what is wrong with the reduction
    raise SelectionError(
        f"--sort {plan.text}: no column, state-point key or metric is named {plan.name!r} "
        f"(columns: {', '.join(table.columns)})."
    )


__all__ = ["RUN_COLUMNS", "Shared", "Table", "build_table", "missing", "rank", "sort_values"]
