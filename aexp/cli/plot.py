"""`aexp plot`: figures of the sweep read from the runs' journals, to a PNG, SVG or PDF file (no
display needed: made for compute clusters). matplotlib comes with the `[plot]` extra and is
imported by this command only.

    aexp plot METRIC                  one curve per job over x (step, wall time or a metric)
    aexp plot --scatter KEY METRIC    one point per run: a hyperparameter against the outcome
    aexp plot --parallel METRIC       parallel coordinates of the whole sweep
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from aexp.cli.parsing import Commands, UsageError
from aexp.cli.resolve import _project_dir
from aexp.cli.runs import add_selection_options, group_keys, selection_of


def default_out(metric: str) -> str:
    """`<metric>.png` with characters that do not belong in a file name replaced by `_`."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric).strip("._")
    return f"{name or 'plot'}.png"


def _known_metrics(records: list[Any]) -> str:
    """The metrics the first runs logged, for an error message."""
    from aexp.journal import read_journal
    from aexp.results.curves import metric_keys

    logged: dict[str, None] = {}
    for record in records[:50]:  # enough to name what there is
        if record.journal:
            try:
                logged.update(dict.fromkeys(metric_keys(read_journal(record.journal))))
            except FileNotFoundError:
                continue
    return f"metrics logged: {', '.join(logged)}" if logged else "no run logged any yet"


def _check_keys(records: list[Any], keys: list[str], flag: str) -> None:
    from aexp.results.select import flatten

    known = {key for r in records for key in flatten(r.statepoint)}
    for key in keys:
        if key not in known and not any(k.startswith(key + ".") for k in known):
            raise UsageError(
                f"{flag} {key}: no job of the selection has that state-point key; keys: "
                f"{', '.join(sorted(known))}."
            )


def cmd_plot(args: argparse.Namespace) -> int:
    from aexp.results.plot import check_out, require_matplotlib

    modes = [m for m in (args.metric, args.scatter, args.parallel) if m]
    if len(modes) != 1:
        raise UsageError(
            "name one figure: METRIC (curves), --scatter KEY METRIC or --parallel METRIC."
        )
    require_matplotlib()  # before any work: one sentence with the install command
    from aexp.results import iter_records
    from aexp.results.workspace import find_root
    from aexp.settings import load_settings

    name = args.metric or (args.scatter[1] if args.scatter else args.parallel)
    out = check_out(args.out or default_out(name))
    selection = selection_of(args)
    root = find_root(_project_dir(args))
    settings = load_settings(root)
    records = list(iter_records(root, selection, group_by=settings.group_by))
    where = selection.describe() or "all jobs"
    if not records:
        raise UsageError(f"no jobs match ({where}); see 'aexp runs' for what there is.")
    if args.metric:
        return _curves(args, records, where, out)
    return _per_run(args, root, settings, records, where, out)


def _curves(args: argparse.Namespace, records: list[Any], where: str, out: Any) -> int:
    from aexp.results.curves import STEP, load_curves
    from aexp.results.plot import plot_metric, save_figure

    by = group_keys(args.by) or []
    _check_keys(records, by, "--by")
    x = args.x or STEP
    series = load_curves(records, args.metric, x)
    if not series:
        against = "" if x == STEP else f" against {x!r}"
        raise UsageError(
            f"no run of the {len(records)} selected job(s) ({where}) logged "
            f"{args.metric!r}{against}; {_known_metrics(records)}."
        )
    title = f"{args.metric} — {where}, {len(series)} job{'s' if len(series) != 1 else ''}"
    if by:
        title += f", coloured by {', '.join(by)}"
    fig = plot_metric(series, args.metric, by=by, band=args.band, logy=args.logy, title=title)
    save_figure(fig, out)
    breaks = sum(len(curve.breaks) for _, curve in series)
    marks = f", {breaks} interrupted attempt(s) marked" if breaks else ""
    band = {
        "minmax": ", mean and min-max band",
        "std": ", mean and ±1 std band",
        "ci": ", mean and 95% CI band",
    }.get(args.band or "", "")
    print(f"wrote {out}: {len(series)} curve(s) of {args.metric}{band}{marks}")
    return 0


def _per_run(
    args: argparse.Namespace, root: str, settings: Any, records: list[Any], where: str, out: Any
) -> int:
    from aexp.results import JournalStats, parse_metric
    from aexp.results.plot import save_figure
    from aexp.results.scatter import plot_parallel, plot_scatter
    from aexp.results.select import VaryingKeys, flatten
    from aexp.schema import FINISHED

    spec = parse_metric(args.scatter[1] if args.scatter else args.parallel)
    stats = JournalStats(root)
    points = [(r, stats.values(r, [spec])[spec.name]) for r in records]
    if not any(v is not None for _, v in points):
        raise UsageError(
            f"no run of the {len(records)} selected job(s) ({where}) has a value of "
            f"{spec.name!r}; {_known_metrics(records)}."
        )
    finished = sum(1 for r, v in points if r.state == FINISHED and v is not None)
    if args.scatter:
        key = args.scatter[0]
        _check_keys(records, [key], "--scatter")
        fig = plot_scatter(points, key, spec.name, logx=args.logx, logy=args.logy,
                           title=f"{spec.name} against {key} — {where}")  # fmt: skip
        save_figure(fig, out)
        shown = sum(1 for _, v in points if v is not None)
        print(f"wrote {out}: {shown} run(s), the mean of {finished} finished per {key}")
        return 0
    keys = group_keys(args.group_by)
    if keys is None:
        seen = VaryingKeys()
        for record in records:
            seen.add(flatten(record.statepoint))
        keys = [k for k in seen.varying() if k not in settings.seed_keys]
    _check_keys(records, keys, "--group-by")
    fig = plot_parallel(points, keys, spec.name, title=f"{spec.name} over {where}")
    save_figure(fig, out)
    print(f"wrote {out}: {finished} finished run(s) across {', '.join([*keys, spec.name])}")
    return 0


def _band(text: str) -> str:
    if text not in ("minmax", "std", "ci"):
        raise argparse.ArgumentTypeError(f"unknown band {text!r}; use minmax, std or ci")
    return text


def register(commands: Commands) -> None:
    """Add `aexp plot`: its options, help text and examples."""
    sub = commands.add(
        "plot",
        "plot the sweep to a PNG/SVG/PDF file: curves per job, or a metric per run",
        "  aexp plot loss --by condition\n"
        "  aexp plot loss --by lr,hidden --band ci --logy --out loss.svg\n"
        "  aexp plot val_loss --x epoch            (or --x time: running wall time)\n"
        "  aexp plot --scatter lr loss:min --logx  (one point per run, the mean per lr)\n"
        "  aexp plot --parallel accuracy:max       (parallel coordinates of the sweep)\n\n"
        "Curves come from the runs' journals (every backend, offline, before any sync);\n"
        "x marks where a preempted attempt ended. Needs matplotlib:\n"
        "  pip install 'agentic-experiments[plot]'",
        cmd_plot,
    )
    sub.add_argument("metric", nargs="?", metavar="METRIC", help="the metric key, e.g. loss")
    sub.add_argument(
        "--by", metavar="K1,K2", help="colour the curves by these state-point keys' values"
    )
    sub.add_argument(
        "--x",
        metavar="X",
        help="the x axis: step (default), time (running wall time, s) or a metric (e.g. epoch)",
    )
    sub.add_argument("--logy", action="store_true", help="a logarithmic y axis")
    sub.add_argument(
        "--band",
        nargs="?",
        const="minmax",
        type=_band,
        metavar="minmax|std|ci",
        help="also draw each colour's mean over its jobs (e.g. seeds) with a band: min-max "
        "(default), mean ± 1 sample standard deviation, or the 95%% t interval of the mean",
    )
    sub.add_argument(
        "--scatter",
        nargs=2,
        metavar=("KEY", "METRIC"),
        help="one point per run: state-point KEY against METRIC[:REDUCTION], and the mean of "
        "the finished runs per value",
    )
    sub.add_argument("--logx", action="store_true", help="--scatter: a logarithmic x axis")
    sub.add_argument(
        "--parallel",
        metavar="METRIC",
        help="parallel coordinates: one line per finished run through its configuration's "
        "keys and METRIC[:REDUCTION]",
    )
    sub.add_argument(
        "--group-by",
        metavar="K1,K2",
        help="--parallel: the axes (default: the keys that vary, but the seed keys)",
    )
    sub.add_argument(
        "--out", metavar="FILE", help="FILE.png, .svg or .pdf (default: METRIC.png here)"
    )
    add_selection_options(sub)


__all__ = ["cmd_plot", "default_out", "register"]
