"""signac-dashboard 0.7 modules: the cards of a job's page and of the sweep's (project) page.

Job page (JobContext):
    RunCard     tracker state, backend(s), run id with its W&B / MLflow link once synced, the
                attempts and their exit codes (from the journal), last metrics, earlier runs
    CurvesCard  the run's metric curves (inline SVG; attempts joined, preemptions marked)
Project page (ProjectContext):
    SweepCard   the filters (where, state, metric, colour by, band) and the jobs per state
    RunsCard    the runs table of `aexp runs` (state-point values that vary, run, state, metrics)
    PlotCard    the figure of `aexp plot`, loaded by the browser from /aexp/sweep.svg

None of them computes flow's status: every card reads the job documents (and, on a job's page,
that job's journal) through aexp.results, so the sweep's page costs one document read per job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from flask import request, url_for
from markupsafe import Markup
from signac_dashboard.module import Module

from aexp.dashboard.data import View, effective_by, metric_names, records_for, view_from
from aexp.dashboard.figures import job_figure
from aexp.dashboard.html import definitions, link, note, state_tag, table
from aexp.journal import read_journal
from aexp.results import read_record, varying_keys
from aexp.results.select import SELECTABLE_STATES, format_value
from aexp.trackers import ADAPTERS


class _AexpModule(Module):
    _supported_contexts = {"JobContext", "ProjectContext"}
    context_name = "JobContext"

    def __init__(self, name: str, *, group_by: tuple[str, ...] = (), **options: Any) -> None:
        super().__init__(name=name, context=self.context_name, template="", **options)
        self.group_by = group_by

    def card(self, content: Any) -> list[dict[str, Any]]:
        return [{"name": self.name, "content": Markup(content)}]


# -- a job's page -------------------------------------------------------------------------------
def _outcome(attempt: Any, last: bool) -> str:
    if attempt.finished:
        if attempt.preempted:
            return "preempted"
        return "finished" if attempt.exit_code == 0 else "failed"
    return "running" if last else "killed (no finish)"


def _when(timestamp: str | None) -> str | None:
    """An ISO-8601 UTC timestamp to the second, readable: 2026-11-29 17:36:42 UTC."""
    if not timestamp:
        return None
    return timestamp[:19].replace("T", " ") + " UTC"


class RunCard(_AexpModule):
    """The job's run: state, backends, links, attempts, last metrics, earlier runs."""

    def __init__(self, name: str = "Run", **options: Any) -> None:
        super().__init__(name, **options)

    def get_cards(self, job: Any) -> list[dict[str, Any]]:
        record = read_record(job, job.cached_statepoint, self.group_by)
        if record.error:
            return self.card(Markup("{} {}").format(state_tag("corrupt"), record.error))
        if not record.binding:
            return self.card(
                definitions([("state", state_tag("unbound")), ("group", record.group)])
                + note("Not bound to a run yet: python project.py run binds and runs it.")
            )
        binding = record.binding
        urls = record.urls
        links = Markup(", ").join(link(url, name) for name, url in urls.items())
        if not urls:
            mirrored = any(
                getattr(ADAPTERS.get(name), "feed", "live") != "journal" for name in record.backends
            )
            links = Markup("not synced yet" if mirrored else "none: the journal is the run")
        parts = [
            definitions(
                [
                    ("state", state_tag(record.state)),
                    ("backend", record.backend_label),
                    ("run", Markup("<code>{}</code>").format(record.run_id)),
                    ("tracker", links),
                    ("project / group", f"{binding.get('project')} / {record.group}"),
                    ("attempts", binding.get("attempts")),
                    ("exit code", binding.get("exit_code")),
                    ("error", binding.get("error")),
                    ("bound", _when(binding.get("bound_at"))),
                    ("finished", _when(binding.get("finished_at"))),
                    ("synced", _when(binding.get("synced_at"))),
                ]
            )
        ]
        parts.append(self._attempts(record))
        summary = record.summary
        if summary:
            parts.append(Markup("<p><strong>Last metrics</strong></p>"))
            parts.append(definitions(sorted(summary.items())))
        if record.previous_runs:
            parts.append(Markup("<p><strong>Earlier runs of this job</strong> (aexp rerun)</p>"))
            rows = [
                (
                    Markup("<code>{}</code>").format(p.get("run_id")),
                    state_tag(str(p.get("state"))),
                    p.get("exit_code"),
                    _when(p.get("finished_at")),
                    link(p.get("url"), p.get("url") or "-"),
                )
                for p in record.previous_runs
            ]
            parts.append(table(("run", "state", "exit code", "finished", "url"), rows))
        return self.card(Markup("").join(parts))

    def _attempts(self, record: Any) -> Markup:
        try:
            journal = read_journal(record.journal)
        except (FileNotFoundError, TypeError):
            return note("No journal yet.")
        attempts = journal.attempts
        if not attempts:
            return note("Not executed yet.")
        rows = []
        for index, a in enumerate(attempts):
            steps = "-" if a.first_step is None else f"{a.first_step}-{a.last_step}"
            outcome = _outcome(a, index == len(attempts) - 1)
            rows.append(
                (
                    a.number,
                    a.host,
                    _when(a.started_at),
                    _when(a.ended_at),
                    a.exit_code,
                    outcome,
                    steps,
                    a.rows,
                )
            )
        header = ("attempt", "host", "started", "ended", "exit code", "outcome", "steps", "rows")
        return Markup("<p><strong>Attempts</strong> (from the journal)</p>") + table(
            header, rows, table_id=f"aexp-attempts-{record.job_id}"
        )


class CurvesCard(_AexpModule):
    """The run's metric curves over its step axis: inline SVG on the job's own page; an image
    loaded when scrolled into view (/aexp/jobs/<id>/curves.svg) where a page shows many jobs
    (drawing a figure costs ~0.1-0.2 s)."""

    def __init__(self, name: str = "Curves", metrics: Sequence[str] | None = None, **options: Any):
        super().__init__(name, **options)
        self.metrics = list(metrics or [])

    def register(self, dashboard: Any) -> None:
        from aexp.dashboard.app import add_job_curves_route

        add_job_curves_route(dashboard, self)

    def get_cards(self, job: Any) -> list[dict[str, Any]]:
        if request.endpoint != "show_job":
            src = url_for("aexp_job_curves", jobid=job.id)
            return self.card(
                Markup('<img class="aexp-curves-image" loading="lazy" src="{}" alt="{}">').format(
                    src, f"metric curves of job {job.id}"
                )
            )
        record = read_record(job, job.cached_statepoint, self.group_by)
        svg, drawn = job_figure(record, self.metrics)
        if svg is None:
            return self.card(note("No metric logged yet."))
        caption = note(
            f"{', '.join(drawn)} over the step axis, every attempt joined; "
            "x: where a preempted attempt ended."
        )
        return self.card(
            Markup('<div class="aexp-curves" id="aexp-curves-{}">').format(job.id)
            + Markup(svg)
            + Markup("</div>")
            + caption
        )


# -- the sweep's page ---------------------------------------------------------------------------
class _SweepModule(_AexpModule):
    context_name = "ProjectContext"

    def __init__(
        self,
        name: str,
        *,
        metrics: Sequence[str] | None = None,
        by: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.metrics = list(metrics or [])
        self.by = by or ""

    def view(self) -> View:
        return view_from(
            request.args, default_metric=self.metrics[0] if self.metrics else "", default_by=self.by
        )


class SweepCard(_SweepModule):
    """The filters of the project page and the number of jobs in each state."""

    def __init__(self, name: str = "Sweep", **options: Any) -> None:
        super().__init__(name, **options)

    def get_cards(self, project: Any) -> list[dict[str, Any]]:
        view = self.view()
        records = records_for(project, view, self.group_by)
        counts: dict[str, int] = {}
        for record in records:
            counts[record.state] = counts.get(record.state, 0) + 1
        here = url_for("project_info")
        tags = [
            Markup('<a href="{}?{}">{} <span class="aexp-count">{}</span></a>').format(
                here, urlencode(view.query(state=state)), state_tag(state), counts[state]
            )
            for state in SELECTABLE_STATES
            if state in counts
        ]
        metrics = metric_names(records) or self.metrics
        keys = varying_keys(r.statepoint for r in records[:2000])
        form = Markup(_FORM).format(
            action=here,
            where=view.where,
            state_options=_options(["", *SELECTABLE_STATES], view.state, "any state"),
            metric_options=_options(metrics or [view.metric], view.metric, None),
            by_options=_options(["", *keys], view.by, "nothing"),
            band_options=_options(["", "minmax", "std"], view.band, "none"),
        )
        problem = note(f"Ignored: {view.problem}") if view.problem else Markup("")
        summary = Markup('<p id="aexp-sweep-count">{} jobs{}: {}</p>').format(
            len(records),
            f" ({view.selection.describe()})" if view.selection.describe() else "",
            Markup(" ").join(tags) or "none",
        )
        return self.card(problem + summary + form)


_FORM = """<form method="get" action="{action}" class="aexp-filters">
<div class="field is-grouped is-grouped-multiline">
<p class="control"><input class="input is-small" name="where" value="{where}"
   placeholder="where: lr=0.1,seed=0..2" size="28"></p>
<p class="control"><span class="select is-small"><select name="state">{state_options}</select>
</span></p>
<p class="control"><span class="select is-small"><select name="metric">{metric_options}</select>
</span></p>
<p class="control"><span class="select is-small"><select name="by">{by_options}</select></span>
</p>
<p class="control"><span class="select is-small"><select name="band">{band_options}</select>
</span></p>
<p class="control"><button class="button is-small is-link" type="submit">show</button></p>
</div></form>"""


def _options(values: Sequence[str], chosen: str, empty: str | None) -> Markup:
    out = []
    for value in values:
        label = value or (empty or "")
        selected = Markup(" selected") if value == chosen else Markup("")
        out.append(Markup('<option value="{}"{}>{}</option>').format(value, selected, label))
    return Markup("").join(out)


class RunsCard(_SweepModule):
    """The runs table: up to `max_rows` jobs of the selection, in `aexp runs`' order."""

    def __init__(self, name: str = "Runs", max_rows: int = 200, **options: Any) -> None:
        super().__init__(name, **options)
        self.max_rows = max_rows

    def get_cards(self, project: Any) -> list[dict[str, Any]]:
        view = self.view()
        records = records_for(project, view, self.group_by)
        params = varying_keys(r.statepoint for r in records)
        metrics = self.metrics or metric_names(records)[:4]
        shown = records[: self.max_rows]
        rows, attrs = [], []
        for record in shown:
            summary = record.summary
            run = Markup("<code>{}</code>").format(record.run_id) if record.run_id else "-"
            if record.urls:
                run = link(next(iter(record.urls.values())), record.run_id or "")
            rows.append(
                (
                    link(
                        url_for("show_job", jobid=record.job_id), record.job_id[:8], external=False
                    ),
                    *(_param(record.statepoint, key) for key in params),
                    state_tag(record.state),
                    record.backend_label,
                    run,
                    *(summary.get(key) for key in metrics),
                )
            )
            attrs.append({"data-job": record.job_id, "data-state": record.state})
        header = ("job", *params, "state", "backend", "run", *metrics)
        more = ""
        if len(records) > len(shown):
            more = (
                f"The first {len(shown)} of {len(records)} jobs; narrow the selection above, "
                "or: aexp runs (every job)."
            )
        return self.card(
            table(header, rows, table_id="aexp-runs", row_attrs=attrs)
            + note(more or "Metrics: the last value logged (aexp runs --metrics for reductions).")
        )


def _param(statepoint: Any, key: str) -> str:
    from aexp.results.select import lookup

    value = lookup(statepoint, key, None)
    return "-" if value is None else format_value(value)


class PlotCard(_SweepModule):
    """The sweep's figure (`aexp plot` of the selection), served as SVG by /aexp/sweep.svg."""

    def __init__(self, name: str = "Curves", max_curves: int = 400, **options: Any) -> None:
        super().__init__(name, **options)
        self.max_curves = max_curves

    def register(self, dashboard: Any) -> None:
        from aexp.dashboard.app import add_sweep_route

        add_sweep_route(dashboard, self)

    def get_cards(self, project: Any) -> list[dict[str, Any]]:
        view = self.view()
        if not view.metric:
            return self.card(note("Pick a metric above."))
        by = effective_by(records_for(project, view, self.group_by), view.by)
        src = f"{url_for('aexp_sweep_svg')}?{urlencode(view.query(by=by))}"
        band = {"minmax": "mean and min-max band", "std": "mean ± 1 sample std"}.get(view.band)
        caption = (
            f"{view.metric} over the step axis, one curve per job"
            + (f", coloured by {by}" if by else "")
            + (f", {band} per colour" if band else "")
            + "; x: a preempted attempt ended there."
        )
        return self.card(
            Markup('<img id="aexp-sweep-plot" src="{}" alt="{}" style="max-width:100%">').format(
                src, caption
            )
            + note(caption)
        )


def default_modules(
    *, metrics: Sequence[str] | None, by: str | None, group_by: tuple[str, ...]
) -> list[Module]:
    """The dashboard's modules: aexp's cards plus signac-dashboard's state point list."""
    from signac_dashboard.modules import StatepointList

    common = {"group_by": group_by}
    return [
        SweepCard(metrics=metrics, by=by, **common),
        PlotCard(metrics=metrics, by=by, **common),
        RunsCard(metrics=metrics, by=by, **common),
        RunCard(**common),
        CurvesCard(metrics=metrics, **common),
        StatepointList(),
    ]


__all__ = [
    "CurvesCard",
    "PlotCard",
    "RunCard",
    "RunsCard",
    "SweepCard",
    "default_modules",
]
