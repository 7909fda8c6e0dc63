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
import os
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


def check_command_line(argv: Sequence[str]) -> None:
    """Refuse, in one sentence (UsageError), a command line signac-dashboard's own parser would
    answer with its usage text: the same commands and options (signac-dashboard 0.7's
    `Dashboard.main`), parsed by aexp.door.SentenceParser first."""
    from aexp.door import SentenceParser

    parser = SentenceParser(prog="dashboard.py")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--version", action="store_true")
    run = parser.add_subparsers().add_parser("run")
    run.add_argument("-p", "--profile", action="store_true")
    run.add_argument("-d", "--debug", action="store_true")
    run.add_argument("--host", type=str)
    run.add_argument("--port", type=_port)
    run.set_defaults(func="run")
    if "--version" not in argv and "-h" not in argv and "--help" not in argv:
        parser.parse_args(argv)


def _port(text: str) -> int:
    """A TCP port, 1 to 65535 (signac-dashboard would quietly serve on another one)."""
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a port: give one from 1 to 65535")
    return port


def launch(argv: Sequence[str] | None = None, **options: Any) -> int:
    """Run the dashboard's command line (`run [--host H] [--port P]`); returns an exit code
    (aexp.door's table: whatever ends it is one line).

    Without signac-dashboard or matplotlib: one sentence with the install command, exit 2. Jobs
    whose state point cannot be read are offered for repair on a terminal
    (aexp.door.offer_repair), else left out with one line each; the dashboard shows the others.
    """
    from aexp import door
    from aexp.startup import release_interrupts

    absent = missing()
    if absent:
        names = " and ".join(n.replace("_", "-") for n in absent)
        print(
            f"error: the dashboard needs {names}; install them with: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return door.USAGE
    workspace = None
    try:
        release_interrupts()  # dashboard.py's startup guard: from here a Ctrl-C is said below
        argv = list(sys.argv[1:] if argv is None else argv)
        check_command_line(argv)
        from aexp.jobs import find_project_root
        from aexp.statepoints import damaged_jobs, quiet_statepoint_errors

        quiet_statepoint_errors()
        if options.get("project") is None:
            workspace = os.path.join(find_project_root(options.get("root")), "workspace")
            door.offer_repair(workspace, [job.id for job in damaged_jobs(workspace)])
        dashboard = make_dashboard(**options)
        dashboard.main(argv)
    except (Exception, KeyboardInterrupt) as exc:
        said = door.verdict(exc, workspace)
        if said is None:
            raise
        if said.line:
            print(f"error: {said.line}", file=sys.stderr)
        return said.code
    return door.OK


__all__ = ["INSTALL_HINT", "check_command_line", "launch", "make_dashboard", "missing"]
