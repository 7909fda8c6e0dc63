"""`aexp runs`: the runs table, or its configurations grouped over seeds, built once for the
command and the MCP tool `runs`. The documents are aexp.results.documents' (`aexp.runs/1`,
`aexp.runs.groups/1`); `runs_report` returns either with every row in it (the command streams
them instead, for tables of 100,000 jobs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from aexp.results.select import SelectionError


def check_metrics(specs: Sequence[Any], logged: Sequence[str], has_value: Callable) -> None:
    """SelectionError for a metric that no selected run logged while others did (a typo, most
    likely); nothing to say while no run has logged anything yet."""
    if not logged:
        return
    for spec in specs:
        if spec.key not in logged and not has_value(spec):
            raise SelectionError(
                f"no selected run logged {spec.key!r} (asked as {spec.name}); metrics logged: "
                f"{', '.join(logged)}."
            )


def runs_table(
    root: str | os.PathLike,
    selection: Any,
    *,
    metrics: Sequence[Any] = (),
    params: list[str] | None = None,
    sort: str | None = None,
    details: bool = False,
) -> Any:
    """The runs table (aexp.results.Table) of the jobs `selection` picks in the project at
    `root`: `metrics` parsed (aexp.results.parse_metrics), `params` the state-point columns
    (None: those that vary), `sort` a column (`-loss`: descending), `details` what the JSON
    document needs beyond the text table."""
    from aexp.results import JournalStats, build_table, iter_records
    from aexp.settings import load_settings

    records = iter_records(root, selection, group_by=load_settings(root).group_by)
    table = build_table(
        records,
        params=params,
        metrics=metrics,
        sort=sort,
        stats=JournalStats(root),
        details=details,
    )
    check_metrics(metrics, table.logged, table.has_value)
    return table


def runs_groups(
    root: str | os.PathLike,
    selection: Any,
    *,
    metrics: Sequence[Any] = (),
    keys: list[str] | None = None,
    sort: str | None = None,
) -> Any:
    """The selected runs grouped by configuration (aexp.results.groups.Groups): by `keys`, or
    by every state-point key but the project's `[results] seed_keys` (None)."""
    from aexp.results import JournalStats, iter_records
    from aexp.results.groups import group_records, sort_groups
    from aexp.settings import load_settings

    settings = load_settings(root)
    records = iter_records(root, selection, group_by=settings.group_by)
    groups = group_records(
        records,
        keys=keys,
        seed_keys=settings.seed_keys,
        metrics=metrics,
        stats=JournalStats(root),
    )
    check_metrics(metrics, groups.logged, lambda m: any(g.spread(m.name).n for g in groups.groups))
    sort_groups(groups, sort)
    return groups


def runs_report(
    root: str | os.PathLike,
    selection: Any,
    *,
    metrics: Sequence[str] = (),
    params: list[str] | None = None,
    sort: str | None = None,
    group_by: list[str] | None = None,
    grouped: bool = False,
) -> dict[str, Any]:
    """`aexp.runs/1` of the selected jobs, or with `grouped` `aexp.runs.groups/1` (by
    `group_by`, None: every key but the seed keys), each row in it. Raises SelectionError or
    MetricError for filters, metrics or sort keys it cannot read."""
    from aexp.results import parse_metrics
    from aexp.results.documents import groups_document, runs_document

    specs = parse_metrics(list(metrics))
    where = selection.describe() or "all jobs"
    if grouped:
        groups = runs_groups(root, selection, metrics=specs, keys=group_by, sort=sort)
        doc = groups_document(groups, selection=where)
    else:
        table = runs_table(root, selection, metrics=specs, params=params, sort=sort, details=True)
        doc = runs_document(table, selection=where)
    return {k: list(v) if isinstance(v, Iterator) else v for k, v in doc.items()}


__all__ = ["check_metrics", "runs_groups", "runs_report", "runs_table"]
