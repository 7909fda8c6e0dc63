"""A web dashboard of the sweep, on signac-dashboard 0.7: `python dashboard.py run`.

    app.py          AexpDashboard: signac-dashboard's Dashboard with the modules below, its
                    defaults from signac.rc ([dashboard]), its job list titled by parameters
    modules.py      the modules, from job_cards.py (a job's run, attempts, curves) and
                    sweep_cards.py (the sweep's filters, figure, configurations, runs)
    cards.py        their base class
    routes.py       the figures' own URLs (/aexp/sweep.svg, /aexp/jobs/<id>/curves.svg)
    data.py         the page's choices (query parameters over signac.rc) and its sweep
    figures.py      the figures as SVG (aexp.results.plot)
    html.py         escaped HTML pieces, sortable tables

Everything comes from the jobs themselves (documents and journals), so it works offline, on a
cluster's login node, for every backend, before any sync; it never computes flow's status. The
extra `[dashboard]` installs signac-dashboard and matplotlib; nothing here is imported by aexp
itself, the CLI or the workflow. docs/results.md ("The dashboard") is the manual.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

INSTALL_HINT = "pip install 'agentic-experiments[dashboard]'"
NEEDS = ("signac_dashboard", "matplotlib")


def missing() -> list[str]:
    """The packages the dashboard needs that are not installed."""
    return [name for name in NEEDS if importlib.util.find_spec(name) is None]


def make_dashboard(**options: Any) -> Any:
    """An AexpDashboard (aexp.dashboard.app); options: root (a directory of the project;
    default: the current one) or project, metrics and by (instead of signac.rc's [dashboard]
    metrics and colour_by), config, modules."""
    from aexp.dashboard.app import AexpDashboard

    return AexpDashboard(**options)


def launch(argv: Sequence[str] | None = None, **options: Any) -> int:
    """Run the dashboard's command line (`run [--host H] [--port P]`); returns an exit code.

    Without signac-dashboard or matplotlib: one sentence with the install command, exit 2.
    """
    absent = missing()
    if absent:
        names = " and ".join(n.replace("_", "-") for n in absent)
        print(
            f"error: the dashboard needs {names}; install them with: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    from aexp.errors import AexpError

    try:
        dashboard = make_dashboard(**options)
    except AexpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dashboard.main(list(argv) if argv is not None else None)
    return 0


__all__ = ["INSTALL_HINT", "launch", "make_dashboard", "missing"]
