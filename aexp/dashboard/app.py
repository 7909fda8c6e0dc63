"""The dashboard application: signac-dashboard's `Dashboard` with aexp's modules, its defaults
from signac.rc (`[dashboard]`, `[results] seed_keys`, `[tracker] group_by`), its job list
titled by what tells the jobs apart, and its built style sheets kept in the project (not in the
installed package).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from signac_dashboard import Dashboard

from aexp.dashboard.data import Options
from aexp.dashboard.modules import default_modules

ASSETS_URL = "/aexp-assets"
ASSETS_DIR = os.path.join(".aexp", "cache", "dashboard-assets")


def options_of(root: str | os.PathLike, **given: Any) -> Options:
    """The dashboard's Options: signac.rc's values, with any of `given` (not None) instead.
    Raises SettingsError for a malformed signac.rc."""
    from aexp.settings import load_settings

    settings = load_settings(root)
    shown = settings.dashboard
    options = Options(
        metrics=shown.metrics,
        colour_by=shown.colour_by,
        band=shown.band,
        max_rows=shown.max_rows,
        max_curves=shown.max_curves,
        group_by=settings.group_by,
        seed_keys=settings.seed_keys,
    )
    changes = {k: tuple(v) if k == "metrics" else v for k, v in given.items() if v is not None}
    return Options(**{**options.__dict__, **changes})


class AexpDashboard(Dashboard):
    """signac-dashboard's Dashboard showing a sweep's runs (aexp.dashboard.modules).

    The project is `project`, else the one at or above `root` (default: the current directory).
    `metrics` (metric keys shown first) and `by` (the state-point key colouring the sweep)
    override signac.rc's `[dashboard] metrics` and `colour_by`. `config` is signac-dashboard's
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

        project = project if project is not None else open_project(root)
        self.aexp_options = options_of(project.path, metrics=metrics, colour_by=by)
        self._titles: tuple[int, list[str]] = (-1, [])
        config = dict(config or {})
        config.setdefault("CARDS_PER_ROW", 1)  # wide cards: the runs table, the figures
        # flask-assets builds the style sheets into its `directory`: keep them in the project's
        # cache rather than inside the installed signac_dashboard package.
        assets = os.path.join(project.path, ASSETS_DIR)
        os.makedirs(assets, exist_ok=True)
        config.setdefault("ASSETS_DIRECTORY", assets)
        config.setdefault("ASSETS_URL", ASSETS_URL)
        if modules is None:
            modules = default_modules(self.aexp_options)
        super().__init__(config=config, project=project, modules=modules)
        _add_assets_route(self, assets)

    # -- the job list: what tells the jobs apart, not bare ids ----------------------------------
    def _title_keys(self) -> list[str]:
        """The state-point keys that vary across the project, read again whenever jobs were
        added or removed (the workspace directory's modification time)."""
        from aexp.results.select import VaryingKeys, flatten
        from aexp.results.workspace import job_dirs, read_statepoint

        try:
            stamp = os.stat(os.path.join(self.project.path, "workspace")).st_mtime_ns
        except OSError:
            return []
        if self._titles[0] != stamp:
            seen = VaryingKeys()
            for _, path in job_dirs(self.project.path):
                statepoint = read_statepoint(path)
                if statepoint is not None:
                    seen.add(flatten(statepoint))
            self._titles = (stamp, seen.varying())
        return self._titles[1]

    def job_title(self, job: Any) -> str:
        """`lr=0.1 hidden=64 seed=0`: the job's values of the keys that vary."""
        from aexp.results.select import format_value, lookup

        missing = object()
        parts = []
        for key in self._title_keys():
            value = lookup(job.cached_statepoint, key, missing)
            if value is not missing:
                parts.append(f"{key}={format_value(value)}")
        return " ".join(parts) or job.id[:8]

    def job_subtitle(self, job: Any) -> str:
        """`finished · loss=0.204 · 3bb648f2`: the job's state, the dashboard's first metric
        (or the job's first fractional one), its short id."""
        from aexp.dashboard.html import text
        from aexp.results import read_record

        record = read_record(job, job.cached_statepoint, self.aexp_options.group_by)
        summary = record.summary
        metric = next((m for m in self.aexp_options.metrics if m in summary), None)
        if metric is None:
            metric = next((k for k, v in summary.items() if type(v) is float), None)
        parts = [record.state]
        if metric is not None:
            parts.append(f"{metric}={text(summary[metric])}")
        return " · ".join([*parts, job.id[:8]])

    def _job_details(self, job: Any) -> dict[str, Any]:
        # signac-dashboard caches these for the server's lifetime; a job's state changes.
        return {"job": job, "title": self.job_title(job), "subtitle": self.job_subtitle(job)}


def _add_assets_route(dashboard: Dashboard, directory: str) -> None:
    """Serve the built assets, and whatever they refer to relatively (web fonts) from the
    package's static folder."""
    from flask import send_from_directory

    static = dashboard.app.static_folder

    @dashboard.app.route(f"{ASSETS_URL}/<path:filename>")
    def aexp_assets(filename: str) -> Any:
        root = directory if os.path.isfile(os.path.join(directory, filename)) else static
        return send_from_directory(root, filename, max_age=300)


__all__ = ["ASSETS_DIR", "ASSETS_URL", "AexpDashboard", "options_of"]
