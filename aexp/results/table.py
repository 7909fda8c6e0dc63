"""The runs table: one row per job, with state-point columns, metric columns and the run's own.

    table = build_table(records, params=None, metrics=parse_metrics(["loss:min"]),
                        sort="-loss:min", stats=JournalStats(project.path))
    table.columns        ["job", "lr", "seed", "group", "backend", "run", "state", "synced",
                          "loss:min", "url"]
    table.rows           one dict per job: {column: value}

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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aexp.results.records import JobRecord
from aexp.results.reduce import MetricSpec, parse_metric, reduce_metric
from aexp.results.select import SelectionError, flatten, lookup, varying_keys
from aexp.results.stats import JournalStats

RUN_COLUMNS = ("group", "backend", "run", "state", "synced")
# Columns a sort may name besides the shown ones (and their aliases).
_RECORD_COLUMNS = {
    "job": lambda r: r.job_id,
    "job_id": lambda r: r.job_id,
    "group": lambda r: r.group,
    "backend": lambda r: r.backend_label,
    "run": lambda r: r.run_id,
    "run_id": lambda r: r.run_id,
    "state": lambda r: r.state,
    "synced": lambda r: r.synced,
    "url": lambda r: r.url,
    "status": lambda r: r.status,
    "attempts": lambda r: (r.binding or {}).get("attempts"),
    "exit_code": lambda r: (r.binding or {}).get("exit_code"),
}
_MISSING = object()


@dataclass
class Table:
    """Rows (one dict per job, keyed by column) and the column order."""

    params: list[str]
    metrics: list[MetricSpec]
    records: list[JobRecord]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return ["job", *self.params, *RUN_COLUMNS, *(m.name for m in self.metrics), "url"]


def metric_value(record: JobRecord, spec: MetricSpec, stats: JournalStats | None) -> Any:
    """One metric cell: the summary's value for a bare key, else the journal's reduction
    (remembered in `record.extras`, so sorting and showing read the journal once)."""
    if not spec.journal:
        return record.summary.get(spec.key)
    if record.run_id is None:
        return None
    if spec.name not in record.extras:
        stats = stats or JournalStats(None)
        aggregates = stats.aggregates(record.job_id, record.journal or "")
        record.extras[spec.name] = reduce_metric(aggregates, spec)
    return record.extras[spec.name]


def _row(
    record: JobRecord, params: Sequence[str], metrics: Sequence[MetricSpec], stats: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {"job": record.job_id}
    for key in params:
        value = lookup(record.statepoint, key, None)
        row[key] = value
    row.update(
        group=record.group,
        backend=record.backend_label,
        run=record.run_id,
        state=record.state,
        synced=record.synced,
    )
    for spec in metrics:
        row[spec.name] = metric_value(record, spec, stats)
    row["url"] = record.url
    return row


def _missing(value: Any) -> bool:
    return value is None or value is _MISSING or (isinstance(value, float) and math.isnan(value))


def _rank(value: Any) -> tuple[int, Any]:
    """Values of different JSON types in one order: numbers, strings, then anything else."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    import json

    return (2, json.dumps(value, sort_keys=True, default=str))


def sort_key_of(
    text: str, records: Sequence[JobRecord], table: Table, stats: JournalStats | None
) -> tuple[Any, bool]:
    """(value of a record for the named sort key, descending?). Raises SelectionError."""
    descending = text.startswith("-")
    name = text[1:] if descending else text
    if not name:
        raise SelectionError("--sort needs a column name (e.g. --sort lr or --sort -loss).")
    for spec in table.metrics:
        if spec.name == name:
            return (lambda r, s=spec: metric_value(r, s, stats)), descending
    if name in table.params:
        return (lambda r: lookup(r.statepoint, name, None)), descending
    if name in _RECORD_COLUMNS:
        return _RECORD_COLUMNS[name], descending
    if any(lookup(r.statepoint, name, _MISSING) is not _MISSING for r in records):
        return (lambda r: lookup(r.statepoint, name, None)), descending
    spec = parse_metric(name)
    if not spec.journal and not any(spec.key in r.summary for r in records):
        columns = ", ".join(table.columns)
        raise SelectionError(
            f"--sort {text}: no column, state-point key or metric is named {name!r} "
            f"(columns: {columns})."
        )
    return (lambda r: metric_value(r, spec, stats)), descending


def sort_records(records: list[JobRecord], key: Any, descending: bool) -> list[JobRecord]:
    """`records` ordered by `key(record)`; records without a value last, in either direction."""
    values = [(key(r), r) for r in records]
    present = [(v, r) for v, r in values if not _missing(v)]
    absent = [r for v, r in values if _missing(v)]
    present.sort(key=lambda pair: _rank(pair[0]), reverse=descending)
    return [r for _, r in present] + absent


def build_table(
    records: Iterable[JobRecord],
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[MetricSpec] = (),
    sort: str | None = None,
    stats: JournalStats | None = None,
) -> Table:
    """The table of `records` (see the module docstring). `params=None`: the varying keys.

    Journals are read only for metric specs that need them, through `stats` (cached when it has
    a project root). Raises SelectionError for a sort key that names nothing.
    """
    records = sorted(records, key=lambda r: (r.group or "", r.job_id))
    if params is None:
        params = varying_keys(r.statepoint for r in records)
    table = Table(params=list(params), metrics=list(metrics), records=records)
    if sort:
        key, descending = sort_key_of(sort, records, table, stats)
        records = sort_records(records, key, descending)
        table.records = records
    table.rows = [_row(r, table.params, table.metrics, stats) for r in records]
    return table


def statepoint_keys(records: Iterable[JobRecord]) -> list[str]:
    """Every dotted state-point key of the records, in the order first seen."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(flatten(record.statepoint)))
    return list(keys)


__all__ = [
    "RUN_COLUMNS",
    "Table",
    "build_table",
    "metric_value",
    "sort_key_of",
    "sort_records",
    "statepoint_keys",
]
