"""`aexp runs`: the sweep as a table: one row per job with its state-point values, its run
(backend, run id, state, synced or not, URL) and its metrics, read from the jobs themselves
(aexp.results): offline, on a cluster, for every backend, before any sync.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from typing import TYPE_CHECKING, Any

from aexp.cli.output import _dump, _fmt, _table
from aexp.cli.parsing import Commands, UsageError
from aexp.cli.resolve import _project
from aexp.cli.sweep import parse_where
from aexp.schema import STATES

if TYPE_CHECKING:
    from aexp.results.select import Selection

FORMATS = ("table", "json", "csv")
# aexp.results.select.SELECTABLE_STATES, spelled out: importing it would load all of
# aexp.results (~11 ms) into every command's parser. tests/test_cli.py checks they agree.
SELECTABLE_STATES = (*STATES, "unbound", "corrupt")


def selection_of(args: argparse.Namespace) -> Selection:
    """The jobs that `--where`, `--experiment`, `--hypothesis` and `--state` select."""
    from aexp.results.select import Selection

    return Selection(
        where=parse_where(args.where or []),
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


def _names(texts: list[str] | None) -> list[str] | None:
    """Comma-separated names from repeatable options; None when the option was not given."""
    if texts is None:
        return None
    return [name.strip() for text in texts for name in text.split(",") if name.strip()]


def _cell(value: Any) -> Any:
    """A table cell: floats to 6 significant digits (JSON keeps every digit)."""
    if isinstance(value, float):
        return value if not math.isfinite(value) else float(f"{value:.6g}")
    return value


def _csv(table: Any, strict: Any) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow("" if row[c] is None else _csv_value(strict(row[c])) for c in table.columns)
    return out.getvalue().rstrip("\n")


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _fmt(value)
    return value


def cmd_runs(args: argparse.Namespace) -> int:
    from aexp.reports.runs import runs_document, runs_table, strict

    if args.json and args.format not in ("table", "json"):
        raise UsageError(f"--json and --format {args.format} disagree; give one of them.")
    fmt = "json" if args.json else args.format
    selection = selection_of(args)
    table = runs_table(
        _project(args),
        selection,
        metrics=args.metrics,
        params=_names(args.params),
        sort=args.sort,
    )
    if args.quiet:
        for row in table.rows:
            print(row["job"])
        return 0
    if fmt == "json":
        print(_dump(runs_document(table, selection=selection.describe() or "all jobs")))
        return 0
    if fmt == "csv":
        print(_csv(table, strict))
        return 0
    if not table.rows:
        print("no jobs match.", file=sys.stderr)
        return 0
    header = [c.upper() if c in _FIXED else c for c in table.columns]
    cells = [[_cell(_shown(c, row[c])) for c in table.columns] for row in table.rows]
    print(_table(header, cells))
    return 0


# The run's own columns are headed in capitals; state-point keys and metrics as written.
_FIXED = {"job", "group", "backend", "run", "state", "synced", "url"}


def _shown(column: str, value: Any) -> Any:
    if column == "synced":
        return None if value is None else ("yes" if value else "no")
    return value


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
        "  aexp runs --where lr=0.1 --params lr,seed --metrics loss:min --format csv\n\n"
        "Metrics: KEY is the last value logged (from the job document); KEY:min, :max,\n"
        "  :mean, :first, :last, :count reduce the run's history (read from its journal).\n"
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
        "--sort",
        metavar="KEY",
        help="sort by a column, state-point key or metric (-KEY: descending); "
        "default: group, then job id",
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


__all__ = ["FORMATS", "add_selection_options", "cmd_runs", "register", "selection_of"]
