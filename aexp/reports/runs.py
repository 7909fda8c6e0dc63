"""`aexp runs --json`: the runs table as one document (`aexp.runs/1`): one object per job
(its run, state, state-point values and metrics), what selected them, and which columns.
"""

from __future__ import annotations

import math
import os
from typing import Any

from aexp.contract import document

RUNS = "aexp.runs/1"


def strict(value: Any) -> Any:
    """Non-finite floats as strict JSON writes them ("NaN", "Infinity", "-Infinity")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return value


def job_objects(table: Any) -> list[dict[str, Any]]:
    """The table's rows as the document's job objects."""
    rows = []
    for record, row in zip(table.records, table.rows, strict=True):
        sp = record.statepoint
        binding = record.binding or {}
        rows.append(
            {
                "job_id": record.job_id,
                "experiment_id": sp.get("experiment_id"),
                "hypothesis_id": sp.get("hypothesis_id"),
                "group": record.group,
                "backend": record.backend,
                "backends": record.backends,
                "offline": record.offline,
                "run_id": record.run_id,
                "state": record.state,
                "url": record.url,
                "urls": record.urls,
                "synced": record.synced,
                "synced_at": binding.get("synced_at"),
                "status": record.status,
                "attempts": binding.get("attempts"),
                "exit_code": binding.get("exit_code"),
                "params": {key: row[key] for key in table.params},
                "metrics": {m.name: strict(row[m.name]) for m in table.metrics},
            }
        )
    return rows


def runs_table(
    project: Any,
    selection: Any,
    *,
    metrics: list[str] | None = None,
    params: list[str] | None = None,
    sort: str | None = None,
) -> Any:
    """The runs table of the jobs `selection` (aexp.results.Selection) picks in a signac
    project: `metrics` as `--metrics` writes them (`loss`, `loss:min`), `params` the state-point
    columns (None: those that vary), `sort` a column (`-loss`: descending)."""
    from aexp.results import JournalStats, build_table, iter_records, parse_metrics
    from aexp.settings import load_settings

    settings = load_settings(project.path)
    records = list(iter_records(project, selection, group_by=settings.group_by))
    stats = JournalStats(project.path)
    table = build_table(
        records, params=params, metrics=parse_metrics(metrics or []), sort=sort, stats=stats
    )
    stats.save(job_ids=set(os.listdir(project.workspace)) if records else None)
    return table


def runs_document(table: Any, *, selection: str) -> dict[str, Any]:
    """`aexp.runs/1` of a runs table; `selection` says in words which jobs it holds."""
    return document(
        RUNS,
        selection=selection,
        count=len(table.rows),
        params=list(table.params),
        metrics=[m.name for m in table.metrics],
        jobs=job_objects(table),
    )


__all__ = ["RUNS", "job_objects", "runs_document", "runs_table", "strict"]
