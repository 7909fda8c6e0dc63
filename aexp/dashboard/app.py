"""The dashboard application: signac-dashboard's `Dashboard` with aexp's modules, its built
style sheets kept in the project (not in the installed package), and the sweep figure's route.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from signac_dashboard import Dashboard

from aexp.dashboard.modules import default_modules

ASSETS_URL = "/aexp-assets"
ASSETS_DIR = os.path.join(".aexp", "cache", "dashboard-assets")


class AexpDashboard(Dashboard):
    """signac-dashboard's Dashboard showing a sweep's runs (aexp.dashboard.modules).

    The project is `project`, else the one at or above `root` (default: the current directory).
    `metrics` are the metric keys shown first (default: what the runs logged); `by` colours the
    sweep's figure by a state-point key (default: nothing). `config` is signac-dashboard's
    (HOST, PORT, ACCESS_TOKEN, PER_PAGE, ...). Raises ProjectNotFoundError outside a project,
    SettingsError for a malformed signac.rc.
    """

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        project: Any = None,
        metrics: Sequence[str] | None = None,
        by: str | None = None,
        config: dict[str, Any] | None = None,
        modules: list[Any] | None = None,
    ) -> None:
        from aexp.jobs import open_project
        from aexp.settings import load_settings

        project = project if project is not None else open_project(root)
        group_by = load_settings(project.path).group_by
        config = dict(config or {})
        config.setdefault("CARDS_PER_ROW", 1)  # wide cards: the runs table, the figures
        # flask-assets builds the style sheets into its `directory`: keep them in the project's
        # cache rather than inside the installed signac_dashboard package.
        assets = os.path.join(project.path, ASSETS_DIR)
        os.makedirs(assets, exist_ok=True)
        config.setdefault("ASSETS_DIRECTORY", assets)
        config.setdefault("ASSETS_URL", ASSETS_URL)
        self.aexp_group_by = group_by
        if modules is None:
            modules = default_modules(metrics=metrics, by=by, group_by=group_by)
        super().__init__(config=config, project=project, modules=modules)
        _add_assets_route(self, assets)


def _add_assets_route(dashboard: Dashboard, directory: str) -> None:
    """Serve the built assets, and whatever they refer to relatively (web fonts) from the
    package's static folder."""
    from flask import send_from_directory

    static = dashboard.app.static_folder

    @dashboard.app.route(f"{ASSETS_URL}/<path:filename>")
    def aexp_assets(filename: str) -> Any:
        root = directory if os.path.isfile(os.path.join(directory, filename)) else static
        return send_from_directory(root, filename, max_age=300)


def add_sweep_route(dashboard: Dashboard, card: Any) -> None:
    """`/aexp/sweep.svg?metric=&by=&band=&where=&state=`: the sweep's figure (login needed)."""
    import flask_login
    from flask import Response, request

    from aexp.dashboard.data import effective_by, records_for, view_from
    from aexp.dashboard.figures import sweep_figure

    @dashboard.app.route("/aexp/sweep.svg", endpoint="aexp_sweep_svg")
    @flask_login.login_required
    def aexp_sweep_svg() -> Any:
        view = view_from(
            request.args,
            default_metric=card.metrics[0] if card.metrics else "",
            default_by=card.by,
        )
        records = records_for(dashboard.project, view, dashboard.aexp_group_by)
        by = effective_by(records, view.by)
        where = view.selection.describe() or "all jobs"
        title = f"{view.metric} — {where}" + (f", coloured by {by}" if by else "")
        svg, _ = sweep_figure(
            records,
            view.metric,
            by=by,
            band=view.band,
            title=title,
            max_curves=card.max_curves,
        )
        return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


_NO_CURVES = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="20">'
    '<text y="15" font-size="12">no metric logged yet</text></svg>'
)


def add_job_curves_route(dashboard: Dashboard, card: Any) -> None:
    """`/aexp/jobs/<job id>/curves.svg`: one job's metric curves (login needed)."""
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
        svg, _ = job_figure(read_record(job, statepoint, dashboard.aexp_group_by), card.metrics)
        if svg is None:
            svg = _NO_CURVES
        return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


__all__ = [
    "ASSETS_DIR",
    "ASSETS_URL",
    "AexpDashboard",
    "add_job_curves_route",
    "add_sweep_route",
]
