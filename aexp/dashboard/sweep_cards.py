"""The cards of the sweep's (project) page, each from the page's Sweep (aexp.dashboard.data):

    SweepCard    the jobs per state and the filters (where, state, metric, colour by, band)
    PlotCard     the figure of `aexp plot`, loaded by the browser from /aexp/sweep.svg
    GroupsCard   the configurations over seeds (`aexp runs --group-by`): runs per state, the
                 metric's mean, std, 95 % t interval and n over the finished runs; sortable
    RunsCard     the runs table of `aexp runs` (state-point values that vary, run, state,
                 last metrics); sortable

Every table sorts in the browser by a click on a column's header (numbers as numbers, missing
values last). Metrics on this page are the last values logged (the job documents' summaries):
the page reads no journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from flask import request, url_for
from markupsafe import Markup

from aexp.dashboard.cards import AexpCard
from aexp.dashboard.data import BANDS, NONE, Sweep, sweep_for
from aexp.dashboard.html import cell, link, note, page_assets, state_tag, table, text
from aexp.dashboard.routes import add_sweep_route
from aexp.results.select import SELECTABLE_STATES, format_value, lookup


class SweepPart(AexpCard):
    """A card of the project page."""

    context_name = "ProjectContext"

    def sweep(self, project: Any) -> Sweep:
        return sweep_for(project, self.options, request.args)


def _options(values: Sequence[tuple[str, str]], chosen: str) -> Markup:
    """<option>s of (value, label) pairs, `chosen` selected."""
    out = []
    for value, label in values:
        selected = Markup(" selected") if value == chosen else Markup("")
        out.append(Markup('<option value="{}"{}>{}</option>').format(value, selected, label))
    return Markup("").join(out)


_FORM = """<form method="get" action="{action}" class="aexp-filters">
<div class="field is-grouped is-grouped-multiline">
<p class="control"><input class="input is-small" name="where" value="{where}"
   placeholder="where: lr=0.1,seed=0..2" size="28"></p>
<p class="control"><span class="select is-small"><select name="state">{states}</select>
</span></p>
<p class="control"><span class="select is-small"><select name="metric">{metrics}</select>
</span></p>
<p class="control"><span class="select is-small"><select name="by" id="aexp-by">{by}</select>
</span></p>
<p class="control"><span class="select is-small"><select name="band">{bands}</select>
</span></p>
<p class="control"><button class="button is-small is-link" type="submit">show</button></p>
</div></form>"""


class SweepCard(SweepPart):
    """The filters of the project page and the number of jobs in each state."""

    def __init__(self, name: str = "Sweep", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)

    def get_cards(self, project: Any) -> list[dict[str, Any]]:
        sweep = self.sweep(project)
        view = sweep.view
        counts: dict[str, int] = {}
        for record in sweep.records:
            counts[record.state] = counts.get(record.state, 0) + 1
        here = url_for("project_info")
        tags = [
            Markup('<a href="{}?{}">{} <span class="aexp-count">{}</span></a>').format(
                here, urlencode(view.query(state=state)), state_tag(state), counts[state]
            )
            for state in SELECTABLE_STATES
            if state in counts
        ]
        inferred = sweep.by if not view.by else ""
        form = Markup(_FORM).format(
            action=here,
            where=view.where,
            states=_options([("", "any state"), *((s, s) for s in SELECTABLE_STATES)], view.state),
            metrics=_options([(m, m) for m in sweep.metrics or [sweep.metric]], sweep.metric),
            by=_options(
                [("", f"colour: {inferred or 'nothing varies'} (default)")]
                + [(k, f"colour by {k}") for k in sweep.keys]
                + [(NONE, "colour: one per job")],
                view.by,
            ),
            bands=_options(
                [("", f"band: {self.options.band or 'none'} (default)")]
                + [(b, f"band: {b}") for b in BANDS]
                + [(NONE, "band: none")],
                view.band,
            ),
        )
        problem = note(f"Ignored: {view.problem}") if view.problem else Markup("")
        described = view.selection.describe()
        summary = Markup('<p id="aexp-sweep-count">{} jobs{}: {}</p>').format(
            len(sweep.records),
            f" ({described})" if described else "",
            Markup(" ").join(tags) or "none",
        )
        return self.card(page_assets() + problem + summary + form)


class PlotCard(SweepPart):
    """The sweep's figure (`aexp plot` of the selection), served as SVG by /aexp/sweep.svg."""

    def __init__(self, name: str = "Curves", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)

    def register(self, dashboard: Any) -> None:
        add_sweep_route(dashboard, self.options)

    def get_cards(self, project: Any) -> list[dict[str, Any]]:
        sweep = self.sweep(project)
        if not sweep.metric:
            return self.card(note("No run has logged a metric yet."))
        query = sweep.view.query(metric=sweep.metric, by=sweep.by or NONE, band=sweep.band or NONE)
        src = f"{url_for('aexp_sweep_svg')}?{urlencode(query)}"
        band = {
            "minmax": "mean and min-max band",
            "std": "mean ± 1 sample std",
            "ci": "mean and 95% t interval of the mean",
        }.get(sweep.band)
        caption = (
            f"{sweep.metric} over the step axis, one curve per job"
            + (f", coloured by {sweep.by}" if sweep.by else "")
            + (f", {band} per colour" if band else "")
            + "; x: a preempted attempt ended there."
        )
        return self.card(
            Markup(
                '<img id="aexp-sweep-plot" src="{}" alt="{}" data-by="{}" style="max-width:100%">'
            ).format(src, caption, sweep.by)
            + note(caption)
        )


class GroupsCard(SweepPart):
    """Configurations over seeds: `aexp runs --group-by` for the page's metric."""

    def __init__(self, name: str = "Configurations", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)

    def get_cards(self, project: Any) -> list[dict[str, Any]]:
        from aexp.results import parse_metric
        from aexp.results.groups import group_records

        sweep = self.sweep(project)
        if not sweep.records:
            return self.card(note("No jobs match."))
        metrics = [sweep.metric] if sweep.metric else []
        groups = group_records(
            sweep.records,
            keys=sweep.config_keys,
            metrics=[parse_metric(m) for m in metrics],
        )
        header = [*groups.keys, "runs", "finished", "failed", "preempted"]
        for name in metrics:
            header += [f"{name} mean", "std", "95% CI", "n"]
        rows = []
        for group in groups.groups:
            row: list[Any] = [*group.config.values()]
            row += [group.count(c) for c in ("runs", "finished", "failed", "preempted")]
            for name in metrics:
                s = group.spread(name)
                ci = None if s.ci_low is None else f"[{text(s.ci_low)}, {text(s.ci_high)}]"
                row += [s.mean, s.std, cell(ci, s.ci_low), s.n]
            rows.append(row)
        caption = note(
            f"One row per configuration of {', '.join(groups.keys) or 'the whole selection'} "
            f"(seed keys: {', '.join(self.options.seed_keys)}); mean, std (n - 1) and 95% "
            f"confidence interval (Student's t) of the last {', '.join(metrics) or 'metric'} "
            "over each configuration's finished runs. Click a column to sort."
        )
        return self.card(
            page_assets() + table(header, rows, table_id="aexp-groups", sortable=True) + caption
        )


class RunsCard(SweepPart):
    """The runs table: up to `[dashboard] max_rows` jobs of the selection, `aexp runs`' order."""

    def __init__(self, name: str = "Runs", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)

    def get_cards(self, project: Any) -> list[dict[str, Any]]:
        sweep = self.sweep(project)
        records = sweep.records
        metrics = list(dict.fromkeys([m for m in (sweep.metric,) if m] + sweep.metrics))[:4]
        shown = records[: self.options.max_rows]
        rows, attrs = [], []
        for record in shown:
            summary = record.summary
            run = Markup("<code>{}</code>").format(record.run_id) if record.run_id else "-"
            if record.urls:
                run = link(next(iter(record.urls.values())), record.run_id or "")
            job = link(url_for("show_job", jobid=record.job_id), record.job_id[:8], external=False)
            rows.append(
                (
                    cell(job, record.job_id),
                    *(_param(record.statepoint, key) for key in sweep.keys),
                    state_tag(record.shown),
                    record.backend_label,
                    run,
                    *(summary.get(key) for key in metrics),
                )
            )
            attrs.append({"data-job": record.job_id, "data-state": record.shown})
        header = ("job", *sweep.keys, "state", "backend", "run", *metrics)
        more = ""
        if len(records) > len(shown):
            more = (
                f"The first {len(shown)} of {len(records)} jobs; narrow the selection above, "
                "or: aexp runs (every job)."
            )
        return self.card(
            page_assets()
            + table(header, rows, table_id="aexp-runs", row_attrs=attrs, sortable=True)
            + note(more or "Metrics: the last value logged (aexp runs --metrics for reductions).")
        )


def _param(statepoint: Any, key: str) -> Any:
    """A state-point value for a cell: numbers as numbers (they sort as numbers), the rest as
    `--sp` writes them."""
    value = lookup(statepoint, key, None)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    return format_value(value)


__all__ = ["GroupsCard", "PlotCard", "RunsCard", "SweepCard", "SweepPart"]
