"""`aexp plot METRIC`: one curve per job over its step axis, read from the runs' journals, to a
PNG, SVG or PDF file (no display needed: made for compute clusters). matplotlib comes with the
`[plot]` extra and is imported by this command only.
"""

from __future__ import annotations

import argparse
import re

from aexp.cli.parsing import Commands, UsageError
from aexp.cli.resolve import _project
from aexp.cli.runs import add_selection_options, selection_of


def default_out(metric: str) -> str:
    """`<metric>.png` with characters that do not belong in a file name replaced by `_`."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric).strip("._")
    return f"{name or 'plot'}.png"


def cmd_plot(args: argparse.Namespace) -> int:
    from aexp.results.plot import require_matplotlib

    require_matplotlib()  # before any work: one sentence with the install command
    from aexp.results import iter_records
    from aexp.results.curves import load_curves
    from aexp.results.plot import plot_metric, save_figure
    from aexp.results.select import flatten
    from aexp.settings import load_settings

    selection = selection_of(args)
    project = _project(args)
    settings = load_settings(project.path)
    records = list(iter_records(project, selection, group_by=settings.group_by))
    where = selection.describe() or "all jobs"
    if not records:
        raise UsageError(f"no jobs match ({where}); see 'aexp runs' for what there is.")
    if args.by:
        keys = {key for r in records for key in flatten(r.statepoint)}
        if args.by not in keys and not any(k.startswith(args.by + ".") for k in keys):
            raise UsageError(
                f"--by {args.by}: no job of the selection has that state-point key; keys: "
                f"{', '.join(sorted(keys))}."
            )
    series = load_curves(records, args.metric)
    if not series:
        from aexp.journal import read_journal
        from aexp.results.curves import metric_keys

        logged: dict[str, None] = {}
        for record in records[:50]:  # enough to name what there is
            if record.journal:
                try:
                    logged.update(dict.fromkeys(metric_keys(read_journal(record.journal))))
                except FileNotFoundError:
                    continue
        known = f"; metrics logged: {', '.join(logged)}" if logged else "; no run logged any yet"
        raise UsageError(
            f"no run of the {len(records)} selected job(s) ({where}) logged {args.metric!r}{known}."
        )
    title = f"{args.metric} — {where}, {len(series)} job{'s' if len(series) != 1 else ''}"
    if args.by:
        title += f", coloured by {args.by}"
    fig = plot_metric(series, args.metric, by=args.by, band=args.band, title=title)
    out = save_figure(fig, args.out or default_out(args.metric))
    breaks = sum(len(curve.breaks) for _, curve in series)
    marks = f", {breaks} interrupted attempt(s) marked" if breaks else ""
    band = ""
    if args.band:
        band = ", mean and min-max band" if args.band == "minmax" else ", mean and ±1 std band"
    print(f"wrote {out}: {len(series)} curve(s) of {args.metric}{band}{marks}")
    return 0


def _band(text: str) -> str:
    if text not in ("minmax", "std"):
        raise argparse.ArgumentTypeError(f"unknown band {text!r}; use minmax or std")
    return text


def register(commands: Commands) -> None:
    """Add `aexp plot`: its options, help text and examples."""
    sub = commands.add(
        "plot",
        "plot a metric over the step axis, one curve per job, to a PNG/SVG/PDF file",
        "  aexp plot loss --by condition\n"
        "  aexp plot loss --by lr --band --where condition=full --out loss.svg\n\n"
        "Curves come from the runs' journals (every backend, offline, before any sync);\n"
        "x marks where a preempted attempt ended. Needs matplotlib:\n"
        "  pip install 'agentic-experiments[plot]'",
        cmd_plot,
    )
    sub.add_argument("metric", metavar="METRIC", help="the metric key, e.g. loss")
    sub.add_argument("--by", metavar="KEY", help="colour the curves by this state-point key")
    sub.add_argument(
        "--band",
        nargs="?",
        const="minmax",
        type=_band,
        metavar="minmax|std",
        help="also draw each colour's mean over its jobs (e.g. seeds) with a band: min-max "
        "(default) or mean ± 1 sample standard deviation",
    )
    sub.add_argument(
        "--out", metavar="FILE", help="FILE.png, .svg or .pdf (default: METRIC.png here)"
    )
    add_selection_options(sub)


__all__ = ["cmd_plot", "default_out", "register"]
