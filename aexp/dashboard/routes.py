"""The dashboard's own routes (login needed, like every page of signac-dashboard): the figures
a page loads after the page itself. A card registers the route it needs (`Module.register`).

    /aexp/sweep.svg?metric=&by=&band=&where=&state=   the sweep's figure (aexp plot)
    /aexp/jobs/<job id>/curves.svg                    one job's metric curves
"""

from __future__ import annotations

from typing import Any

from aexp.dashboard.data import Options, sweep_for

_NO_CURVES = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="20">'
    '<text y="15" font-size="12">no metric logged yet</text></svg>'
)


def add_sweep_route(dashboard: Any, options: Options) -> None:
    """`/aexp/sweep.svg`: the figure of the project page's selection (its query parameters)."""
    import flask_login
    from flask import Response, request

    from aexp.dashboard.figures import sweep_figure

    @dashboard.app.route("/aexp/sweep.svg", endpoint="aexp_sweep_svg")
    @flask_login.login_required
    def aexp_sweep_svg() -> Any:
        sweep = sweep_for(dashboard.project, options, request.args)
        where = sweep.view.selection.describe() or "all jobs"
        title = f"{sweep.metric} — {where}" + (f", coloured by {sweep.by}" if sweep.by else "")
        svg, _ = sweep_figure(
            sweep.records,
            sweep.metric,
            by=sweep.by,
            band=sweep.band,
            title=title,
            max_curves=options.max_curves,
        )
        return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


def add_job_curves_route(dashboard: Any, metrics: list[str], group_by: tuple[str, ...]) -> None:
    """`/aexp/jobs/<job id>/curves.svg`: one job's metric curves (`metrics`: the ones drawn
    first)."""
    import flask_login
    from flask import Response

    from aexp.dashboard.figures import job_figure
    from aexp.results import read_record

    @dashboard.app.route("/aexp/jobs/<jobid>/curves.svg", endpoint="aexp_job_curves")
    @flask_login.login_required
    def aexp_job_curves(jobid: str) -> Any:
        try:
            job = dashboard.project.open_job(id=jobid)
            statepoint = job.cached_statepoint
        except LookupError:  # not abort(404): signac-dashboard answers that with a 200 page
            return Response(f"no job {jobid}", status=404, mimetype="text/plain")
        svg, _ = job_figure(read_record(job, statepoint, group_by), metrics)
        if svg is None:
            svg = _NO_CURVES
        return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


__all__ = ["add_job_curves_route", "add_sweep_route"]
