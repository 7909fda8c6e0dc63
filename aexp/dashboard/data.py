"""What the dashboard's cards read, once per page: the selection in the page's query string and
the records of the selected jobs (aexp.results: one document read per job, like `status`; never
flow's status, never a journal for the sweep's pages).

The project page takes the same filters as `aexp runs` and `aexp plot`, as query parameters:

    /project/?where=lr%3D0.1,seed%3D0..2&state=finished&metric=loss&by=lr&band=minmax
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aexp.errors import AexpError
from aexp.results import JobRecord, Selection, iter_records
from aexp.results.select import SELECTABLE_STATES


@dataclass(frozen=True)
class View:
    """The project page's options: which jobs, which metric, coloured by what, which band."""

    selection: Selection
    where: str = ""
    state: str = ""
    metric: str = ""
    by: str = ""
    band: str = ""
    problem: str | None = None  # a filter that could not be read (shown, then ignored)

    def query(self, **changes: str) -> dict[str, str]:
        """The query parameters of this view (with `changes`), empty ones left out."""
        values = {
            "where": self.where,
            "state": self.state,
            "metric": self.metric,
            "by": self.by,
            "band": self.band,
            **changes,
        }
        return {key: value for key, value in values.items() if value}


def view_from(args: Any, *, default_metric: str = "", default_by: str = "") -> View:
    """The View of a request's query parameters (`args`: a mapping of str to str)."""
    from aexp.cli.sweep import parse_where  # the --where grammar of the command line

    where = (args.get("where") or "").strip()
    state = (args.get("state") or "").strip()
    problem = None
    filters: dict[str, list[Any]] = {}
    if where:
        try:
            filters = parse_where([where])
        except AexpError as exc:
            problem = str(exc).replace("--where", "where")
    if state and state not in SELECTABLE_STATES:
        problem = f"unknown state {state!r}; known states: {', '.join(SELECTABLE_STATES)}."
        state = ""
    band = args.get("band") or ""
    return View(
        selection=Selection(where=filters, states=(state,) if state else ()),
        where=where,
        state=state,
        metric=(args.get("metric") or default_metric).strip(),
        by=(args.get("by") or default_by).strip(),
        band=band if band in ("minmax", "std") else "",
        problem=problem,
    )


def records_for(project: Any, view: View, group_by: tuple[str, ...]) -> list[JobRecord]:
    """The records of the view's jobs, computed once per request (flask.g) and shared by every
    card of the page, in the table's order (group, then job id)."""
    from flask import g

    key = ("aexp_records", view.where, view.state)
    cache = g.setdefault("aexp_cache", {})
    if key not in cache:
        records = iter_records(project, view.selection, group_by=group_by, warn=False)
        cache[key] = sorted(records, key=lambda r: (r.group or "", r.job_id))
    return cache[key]


def effective_by(records: list[JobRecord], by: str) -> str:
    """`by` if some selected job's state point has that key, else "" (a default that does not
    apply to this project colours nothing)."""
    from aexp.results.select import lookup

    missing = object()
    return (
        by if by and any(lookup(r.statepoint, by, missing) is not missing for r in records) else ""
    )


def metric_names(records: list[JobRecord], limit: int = 200) -> list[str]:
    """Metric keys with a numeric last value in the summaries of (up to `limit`) records."""
    names: dict[str, None] = {}
    for record in records[:limit]:
        for key, value in record.summary.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                names.setdefault(key, None)
    return list(names)


__all__ = ["View", "effective_by", "metric_names", "records_for", "view_from"]
