"""What the dashboard's cards read, once per page: the page's choices (query parameters over the
signac.rc `[dashboard]` defaults) and the sweep they select (aexp.results: one document read per
job, like `status`; never flow's status, never a journal for the sweep's pages).

The project page takes the same filters as `aexp runs` and `aexp plot`, as query parameters:

    /project/?where=lr%3D0.1,seed%3D0..2&state=finished&metric=loss&by=lr&band=ci

`by` and `band` left out (or empty) mean the defaults: `[dashboard] colour_by` where a job has
that key, else the first state-point key that varies (seed keys last); `[dashboard] band`.
`by=none` and `band=none` switch them off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aexp.errors import AexpError
from aexp.results import JobRecord, Selection, iter_records
from aexp.results.select import SELECTABLE_STATES, VaryingKeys, flatten, lookup

NONE = "none"  # `by=none`, `band=none`: switched off on purpose
BANDS = ("minmax", "std", "ci")


@dataclass(frozen=True)
class Options:
    """The dashboard's defaults: signac.rc's `[dashboard]` and `[results]`, or what
    `make_dashboard` was given."""

    metrics: tuple[str, ...] = ()
    colour_by: str = ""
    band: str = ""
    max_rows: int = 200
    max_curves: int = 400
    group_by: tuple[str, ...] = ()  # [tracker] group_by: the groups of unbound jobs
    seed_keys: tuple[str, ...] = ("seed",)


@dataclass(frozen=True)
class View:
    """The project page's query: which jobs, which metric, coloured by what, which band."""

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


def view_from(args: Any) -> View:
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
    band = (args.get("band") or "").strip()
    return View(
        selection=Selection(where=filters, states=(state,) if state else ()),
        where=where,
        state=state,
        metric=(args.get("metric") or "").strip(),
        by=(args.get("by") or "").strip(),
        band=band if band in (*BANDS, NONE) else "",
        problem=problem,
    )


@dataclass
class Sweep:
    """The selected jobs and what the page shows of them (see `sweep_for`)."""

    view: View
    records: list[JobRecord]
    keys: list[str]  # state-point keys that vary across the selection
    config_keys: list[str]  # ... less the seed keys: what tells configurations apart
    metrics: list[str]  # offered: the configured ones, then every other one the runs logged
    metric: str  # shown
    by: str  # the key colouring the figure ("" for none)
    band: str  # "" for none
    options: Options = field(default_factory=Options)


def logged_metrics(records: list[JobRecord]) -> list[str]:
    """Every metric key with a numeric last value in the records' summaries, in the order
    first seen."""
    names: dict[str, None] = {}
    for record in records:
        summary = (record.binding or {}).get("summary") or {}
        for key, value in summary.items():
            if key not in names and type(value) in (int, float):
                names[key] = None
    return list(names)


def _first_measure(records: list[JobRecord], names: list[str]) -> str:
    """The first metric whose last values include a fraction (a loss, an accuracy), rather
    than a counter like an epoch or a step; else the first one."""
    for name in names:
        for record in records:
            value = ((record.binding or {}).get("summary") or {}).get(name)
            if type(value) is float:
                return name
    return names[0] if names else ""


def colour_key(records: list[JobRecord], wanted: str, options: Options, keys: list[str]) -> str:
    """The key that colours the sweep: `wanted` (the page's `by`) or `[dashboard] colour_by`
    where some selected job has it, else the first key that varies (seed keys last); "" for
    `none` or when nothing varies."""
    if wanted == NONE:
        return ""
    missing = object()
    for key in (wanted, options.colour_by):
        if key and any(lookup(r.statepoint, key, missing) is not missing for r in records):
            return key
    ranked = sorted(keys, key=lambda k: k in options.seed_keys)  # stable: seeds go last
    return ranked[0] if ranked else ""


def sweep_for(project: Any, options: Options, args: Any) -> Sweep:
    """The Sweep of a request (`args`: its query parameters), computed once per request
    (flask.g) and shared by every card of the page; records in the table's order (group,
    then job id)."""
    from flask import g

    view = view_from(args)
    key = ("aexp_sweep", view.where, view.state, view.metric, view.by, view.band)
    cache = g.setdefault("aexp_cache", {})
    if key not in cache:
        records = iter_records(project, view.selection, group_by=options.group_by, warn=False)
        records = sorted(records, key=lambda r: (r.group or "", r.job_id))
        seen = VaryingKeys()
        for record in records:
            seen.add(flatten(record.statepoint))
        keys = seen.varying()
        logged = logged_metrics(records)
        offered = list(dict.fromkeys([*options.metrics, *logged]))
        metric = view.metric or (options.metrics[0] if options.metrics else "")
        metric = metric or _first_measure(records, logged)
        band = view.band or options.band
        cache[key] = Sweep(
            view=view,
            records=records,
            keys=keys,
            config_keys=[k for k in keys if k not in options.seed_keys],
            metrics=offered,
            metric=metric,
            by=colour_key(records, view.by, options, keys),
            band="" if band == NONE else band,
            options=options,
        )
    return cache[key]


__all__ = [
    "NONE",
    "Options",
    "Sweep",
    "View",
    "colour_key",
    "logged_metrics",
    "sweep_for",
    "view_from",
]
