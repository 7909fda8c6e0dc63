"""`aexp runs`: the sweep as a table: one row per job with its state-point values, its run
(backend, run id, state, synced or not, URL) and its metrics, read from the jobs themselves
(aexp.results): offline, on a cluster, for every backend, before any sync.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from aexp.cli.output import _fmt, _warn
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project_dir
from aexp.cli.sweep import parse_where
from aexp.errors import UsageError
from aexp.schema import STATES

if TYPE_CHECKING:
    from aexp.results.select import Selection

FORMATS = ("table", "json", "csv")
# aexp.results.select.SELECTABLE_STATES, spelled out: importing it would load all of
# aexp.results (~11 ms) into every command's parser. tests/test_cli.py checks they agree.
SELECTABLE_STATES = (*STATES, "stale", "stalled", "unbound", "corrupt")


def selection_of(args: argparse.Namespace) -> Selection:
    """The jobs that `--where`, `--experiment`, `--hypothesis` and `--state` select."""
    from aexp.results.select import Selection

    return Selection(
        where=parse_where(args.where or [], warn=_warn),
        experiment=args.experiment,
        hypothesis=args.hypothesis,
        states=tuple(args.state or ()),
    )


def add_selection_options(sub: argparse.ArgumentParser) -> None:
    """The filters `runs`, `plot` and `remove` share."""
    sub.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="only jobs whose state point has this value (typed like --sp: lr=0.1, "
        "seed=0..2, condition=full|ablated; repeatable, all must hold)",
    )
    sub.add_argument("--experiment", metavar="E", help="only this experiment id")
    sub.add_argument("--hypothesis", metavar="H", help="only this hypothesis id")
    sub.add_argument(
        "--state", type=_state, action="append", metavar="S", help="only this state (repeatable)"
    )


def _state(text: str) -> str:
    if text not in SELECTABLE_STATES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r}; known states: {', '.join(SELECTABLE_STATES)}"
        )
    return text


def _split_names(texts: list[str] | None) -> list[str] | None:
    """Comma-separated names from repeatable options; None when the option was not given."""
    if texts is None:
        return None
    return [name.strip() for text in texts for name in text.split(",") if name.strip()]


def group_keys(text: str | None) -> list[str] | None:
    """The keys of `--group-by K1,K2`; None (every key but the seed keys) when none are named."""
    if text is None or text == _DEFAULT:
        return None
    return _split_names([text])


def text_cell(value: Any) -> str:
    """A table cell as `aexp runs` prints it: `-` for None, floats to 6 significant digits,
    strings as they are, the rest as JSON (`--format json` keeps every digit)."""
    kind = type(value)
    if kind is str:
        return value or '""'
    if value is None:
        return "-"
    if kind is float:
        return repr(float(f"{value:.6g}")) if math.isfinite(value) else json.dumps(value)
    if kind is int:
        return str(value)
    return json.dumps(value)


def write_text_table(header: Sequence[str], rows: Callable[[], Iterable[Sequence[Any]]]) -> None:
    """Print rows under a header, columns padded to their widest cell, two spaces apart.

    `rows` is called twice (widths first, then the lines), so no formatted row is kept: a
    table of 100,000 jobs costs the memory of its rows, not of their text as well.
    """
    widths = [len(h) for h in header]
    for row in rows():
        for i, value in enumerate(row):
            width = len(text_cell(value))
            if width > widths[i]:
                widths[i] = width
    out = sys.stdout
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    for row in rows():
        line = "  ".join(text_cell(v).ljust(w) for v, w in zip(row, widths, strict=True))
        out.write(line.rstrip() + "\n")


def _csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from aexp.results.documents import strict

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow("" if v is None else _csv_value(strict(v)) for v in row)


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _fmt(value)
    return value


def cmd_runs(args: argparse.Namespace) -> int:
    from aexp.reports.runs import runs_groups, runs_table
    from aexp.results import parse_metrics
    from aexp.results.workspace import find_root

    if args.json and args.format not in ("table", "json"):
        raise UsageError(f"--json and --format {args.format} disagree; give one of them.")
    fmt = "json" if args.json else args.format
    selection = selection_of(args)
    metrics = parse_metrics(args.metrics or [])
    root = find_root(_project_dir(args))
    where = selection.describe() or "all jobs"
    if args.group_by is not None:
        if args.params is not None or args.quiet:
            raise UsageError("--group-by shows configurations: --params and -q apply to jobs.")
        groups = runs_groups(
            root, selection, metrics=metrics, keys=group_keys(args.group_by), sort=args.sort
        )
        return print_groups(groups, fmt, where)
    table = runs_table(
        root,
        selection,
        metrics=metrics,
        params=_split_names(args.params),
        sort=args.sort,
        details=fmt == "json",
    )
    if args.quiet:
        for values in table.values():
            print(values[0])
        return 0
    if fmt == "json":
        from aexp.results.documents import runs_document, write_json

        write_json(runs_document(table, selection=where), sys.stdout)
        return 0
    if fmt == "csv":
        _csv(table.columns, table.values())
        return 0
    if not len(table):
        print("no jobs match.", file=sys.stderr)
        return 0
    synced = table.columns.index("synced")

    def rows() -> Iterator[list[Any]]:
        for values in table.values():
            flag = values[synced]
            values[synced] = None if flag is None else ("yes" if flag else "no")
            yield values

    header = [c.upper() if c in _FIXED else c for c in table.columns]
    write_text_table(header, rows)
    return 0


def print_groups(groups: Any, fmt: str, where: str) -> int:
    """Print grouped runs as a table, CSV or a JSON document; returns the exit code."""
    from aexp.results.documents import groups_document, write_json
    from aexp.results.groups import COUNTS

    names = [m.name for m in groups.metrics]
    if fmt == "json":
        write_json(groups_document(groups, selection=where), sys.stdout)
        return 0
    if fmt == "csv":
        columns = [*groups.keys, *COUNTS]
        columns += [
            f"{n}.{a}" for n in names for a in ("n", "mean", "std", "ci95_low", "ci95_high")
        ]
        _csv(
            columns,
            (
                [*g.config.values(), *(g.aggregate(c) for c in columns[len(groups.keys) :])]
                for g in groups.groups
            ),
        )
        return 0
    if not groups.groups:
        print("no jobs match.", file=sys.stderr)
        return 0
    # A metric's own n is shown where it differs from the finished runs somewhere (a run that
    # never logged it, or logged NaN).
    with_n = [n for n in names if any(g.spread(n).n != g.count("finished") for g in groups.groups)]
    header = [*groups.keys, *(c.upper() for c in COUNTS)]
    for name in names:
        header += [f"{name} mean", "std", "95% CI"] + (["n"] if name in with_n else [])

    def rows() -> Iterator[list[Any]]:
        for g in groups.groups:
            row = [*g.config.values(), *(g.count(c) for c in COUNTS)]
            for name in names:
                s = g.spread(name)
                ci = (
                    None if s.ci_low is None else f"[{text_cell(s.ci_low)}, {text_cell(s.ci_high)}]"
                )
                row += [s.mean, s.std, ci] + ([s.n] if name in with_n else [])
            yield row

    write_text_table(header, rows)
    total = sum(g.runs for g in groups.groups)
    keys = ", ".join(groups.keys) or "nothing (one configuration)"
    print(
        f"{len(groups.groups)} configuration(s) of {total} job(s) ({where}) by {keys}; "
        "mean, std (n - 1) and 95% CI (Student's t) over the finished runs of each."
    )
    return 0


# The run's own columns are headed in capitals; state-point keys and metrics as written.
_FIXED = {"job", "group", "backend", "run", "state", "synced", "url"}
_DEFAULT = "\0default"  # --group-by without keys


def _check_format(text: str) -> str:
    if text not in FORMATS:
        raise argparse.ArgumentTypeError(f"unknown format {text!r}; use {', '.join(FORMATS)}")
    return text


def register(commands: Commands) -> None:
    """Add `aexp runs`: its options, help text and examples."""
    sub = commands.add(
        "runs",
        "the sweep as a table: state-point values, run, state and metrics per job",
        "  aexp runs --experiment E018 --state failed\n"
        "  aexp runs --metrics loss,accuracy:max --sort loss\n"
        "  aexp runs --where lr=0.1 --params lr,seed --metrics loss:min --format csv\n"
        "  aexp runs --group-by --metrics loss:min,accuracy:max --sort loss:min\n\n"
        "Metrics: KEY is the last value logged (from the job document); KEY:min, :max,\n"
        "  :mean, :first, :last, :count reduce the run's history (read from its journal).\n"
        "--group-by: one row per configuration (by default every state-point key but the\n"
        "  [results] seed_keys of signac.rc) with its runs per state and, per metric, the mean,\n"
        "  std and 95% CI (Student's t) over its finished runs; sort by a key, a count\n"
        "  (runs, finished, failed, preempted) or an aggregate (loss:min = its mean,\n"
        "  loss:min.std, loss:min.n, loss:min.ci95_low, ...).\n"
        f"States: {', '.join(SELECTABLE_STATES)}.",
        cmd_runs,
    )
    add_selection_options(sub)
    sub.add_argument(
        "--params",
        action="append",
        metavar="K1,K2",
        help="state-point columns (default: the keys whose value varies across the rows; "
        "--params '' for none)",
    )
    sub.add_argument(
        "--metrics",
        action="append",
        metavar="M1,M2",
        help="metric columns: KEY (last value) or KEY:min|max|mean|first|last|count",
    )
    sub.add_argument(
        "--group-by",
        nargs="?",
        const=_DEFAULT,
        metavar="K1,K2",
        help="one row per configuration of these state-point keys (alone: every key but the "
        "seed keys), with n, mean, std and 95%% CI of each metric over its finished runs",
    )
    sub.add_argument(
        "--sort",
        metavar="KEY",
        help="sort by a column, state-point key or metric (-KEY: descending); "
        "default: group, then job id (grouped: the keys)",
    )
    sub.add_argument(
        "--format",
        type=_check_format,
        default="table",
        metavar="F",
        help="table (default), json or csv",
    )
    out = sub.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the same as --format json")
    out.add_argument("-q", "--quiet", action="store_true", help="print only the job ids")


__all__ = [
    "FORMATS",
    "add_selection_options",
    "cmd_runs",
    "group_keys",
    "register",
    "selection_of",
    "text_cell",
    "write_text_table",
]
