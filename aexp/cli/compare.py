"""`aexp compare A B`: two jobs, or two configurations, side by side: where their state points
differ, every metric on both sides with the difference, and their curves in one figure
(aexp.results.compare, aexp.results.plot).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aexp.cli.parsing import Commands, UsageError
from aexp.cli.resolve import _project_dir
from aexp.cli.runs import add_selection_options, selection_of, text_cell, write_text_table


def _side(args: argparse.Namespace, root: str, ident: str, group_by: tuple[str, ...]) -> Any:
    """A side named on the command line: `KEY=VALUE[,...]` is a configuration (the jobs the
    `--where` grammar selects, narrowed by the selection options), anything else a job (id,
    unique prefix or run id)."""
    from dataclasses import replace

    from aexp.results import iter_records
    from aexp.results.compare import Side
    from aexp.results.select import Selection

    if "=" in ident:
        from aexp.cli.sweep import parse_where

        base = selection_of(args)
        where = parse_where([ident])
        selection = replace(base, where={**base.where, **where})
        records = list(iter_records(root, selection, group_by=group_by))
        if not records:
            raise UsageError(f"no job matches {ident} ({selection.describe()}).")
        label = ", ".join(f"{k}={text_cell(v[0]) if len(v) == 1 else v}" for k, v in where.items())
        return Side.of_config(label, records)
    from aexp.cli.resolve import _jobs
    from aexp.jobs import open_project

    (job,) = _jobs(open_project(root), [ident], stdin=False)
    (record,) = iter_records(root, Selection(job_ids=frozenset([job.id])), group_by=group_by)
    return Side.of_job(record)


def _value(spread: Any, kind: str) -> str:
    """A side's value: the job's own, or a configuration's mean ± std (n)."""
    if spread.n == 0:
        return "-"
    if kind == "job" or spread.std is None:
        return text_cell(spread.mean) + ("" if kind == "job" else " (n=1)")
    return f"{text_cell(spread.mean)} ± {text_cell(spread.std)} (n={spread.n})"


def _difference(row: Any) -> str:
    gap = row.gap
    if gap.diff is None:
        return "-"
    if gap.ci_low is None:
        return text_cell(gap.diff)
    return f"{text_cell(gap.diff)} [{text_cell(gap.ci_low)}, {text_cell(gap.ci_high)}]"


def cmd_compare(args: argparse.Namespace) -> int:
    from aexp.results import JournalStats, parse_metrics
    from aexp.results.compare import compare
    from aexp.results.workspace import find_root
    from aexp.settings import load_settings

    metrics = parse_metrics(args.metrics) if args.metrics else None
    if args.plot:
        from aexp.results.plot import check_out, require_matplotlib

        require_matplotlib()
        check_out(args.plot)
    root = find_root(_project_dir(args))
    settings = load_settings(root)
    a = _side(args, root, args.a, settings.group_by)
    b = _side(args, root, args.b, settings.group_by)
    comparison = compare(a, b, metrics=metrics, stats=JournalStats(root))
    wrote = _plot(args, comparison) if args.plot else None
    if args.json:
        from aexp.results.documents import compare_document, write_json

        write_json(compare_document(comparison), sys.stdout)
        return 0
    for name, side in (("A", a), ("B", b)):
        states = ", ".join(f"{n} {s}" for s, n in side.states().items())
        print(f"{name}: {side.label} ({len(side.records)} run(s): {states})")
    if comparison.differs:
        write_text_table(
            ["state point", "A", "B"],
            lambda: ([k, *v] for k, v in comparison.differs.items()),
        )
    else:
        print("state point: the same")
    varies = sorted({*a.varies, *b.varies})
    if varies:
        print(f"varies within a side (not compared): {', '.join(varies)}")
    if comparison.metrics:
        kinds = (a.kind, b.kind)
        either = "configuration" in kinds
        write_text_table(
            ["metric", "A", "B", "B - A" + (" [95% CI, Welch]" if either else "")],
            lambda: (
                [m.name, _value(m.a, kinds[0]), _value(m.b, kinds[1]), _difference(m)]
                for m in comparison.metrics
            ),
        )
        if either:
            print("configurations: mean ± std over their finished runs.")
    else:
        print("metrics: none logged by either side yet")
    if wrote:
        print(f"wrote {wrote}: the curves of {args.metric or 'the first metric'}")
    return 0


def _plot(args: argparse.Namespace, comparison: Any) -> str:
    from aexp.results import parse_metric
    from aexp.results.curves import load_curves
    from aexp.results.plot import plot_sides, save_figure

    metric = args.metric or (
        parse_metric(comparison.metrics[0].name).key if comparison.metrics else None
    )
    if metric is None:
        raise UsageError("--plot needs --metric KEY (a logged metric's key, e.g. loss).")
    sides = [
        (f"{tag}: {side.label}", load_curves(side.records, metric))
        for tag, side in (("A", comparison.a), ("B", comparison.b))
    ]
    if not any(series for _, series in sides):
        raise UsageError(f"neither side logged {metric!r}; nothing to plot.")
    args.metric = metric
    fig = plot_sides(sides, metric, title=f"{metric}: A vs B")
    return str(save_figure(fig, args.plot))


def register(commands: Commands) -> None:
    """Add `aexp compare`: its options, help text and examples."""
    sub = commands.add(
        "compare",
        "two jobs or two configurations side by side: state points, metrics, curves",
        "  aexp compare 3bb648f2 f7668ec6\n"
        "  aexp compare lr=0.05 lr=0.5 --metrics loss:min,accuracy:max\n"
        "  aexp compare lr=0.05 lr=0.5 --plot loss.png --metric loss\n\n"
        "A side is a job (id, unique prefix or run id) or a configuration KEY=VALUE[,...]\n"
        "  (the jobs --where would select). A configuration's values: mean ± std over its\n"
        "  finished runs; B - A with Welch's 95% CI.",
        cmd_compare,
    )
    sub.add_argument("a", metavar="A", help="a job, or a configuration KEY=VALUE[,KEY=VALUE]")
    sub.add_argument("b", metavar="B", help="the same for the other side")
    sub.add_argument(
        "--metrics",
        action="append",
        metavar="M1,M2",
        help="metrics to compare (default: every metric logged, last values); KEY:REDUCTION too",
    )
    sub.add_argument("--plot", metavar="FILE", help="also draw both sides' curves (.png/.svg/.pdf)")
    sub.add_argument("--metric", metavar="KEY", help="the metric --plot draws (default: the first)")
    add_selection_options(sub)
    sub.add_argument("--json", action="store_true", help="one JSON document (aexp.compare/1)")


__all__ = ["cmd_compare", "register"]
