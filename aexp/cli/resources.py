"""`aexp resources`: walltime and memory per operation, suggested from past attempts.

Each attempt records its wall time and the peak memory of its process tree in its run's journal
(aexp.usage); aexp.slurm.sizing turns a project's attempts into a high quantile plus a margin,
with n, and names the attempts that were preempted at the time limit. `[slurm] walltime = auto`
and `memory = auto` in signac.rc make `python project.py submit` use the same suggestion.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from aexp.cli.parsing import Commands, UsageError
from aexp.cli.resolve import _project_dir

SCHEMA = "aexp.resources/1"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10, not {value}")
    return value


def _clock(seconds: float | None) -> str:
    return "-" if seconds is None else str(timedelta(seconds=round(seconds)))


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MiB"


def cmd_resources(args: argparse.Namespace) -> int:
    from aexp.cli.output import _dump, _table
    from aexp.results.workspace import find_root
    from aexp.settings import load_settings
    from aexp.slurm.sizing import MIN_RUNS, project_runs, suggest

    if not 0 < args.quantile <= 1:
        raise UsageError(f"--quantile must be above 0 and at most 1, not {args.quantile}.")
    root = find_root(_project_dir(args))
    settings = load_settings(root)
    runs = list(project_runs(root))
    found = suggest(
        runs,
        warning_seconds=settings.slurm.warning_seconds,
        warning_signal=settings.slurm.warning_signal,
        quantile=args.quantile,
        margin=args.margin,
    )
    if args.json:
        print(_dump({"schema": SCHEMA, "min_runs": MIN_RUNS, "operations": [found.as_json()]}))
        return 0
    if not runs:
        print("no attempt has been measured yet: run or submit some jobs first.")
        return 0
    q = f"p{args.quantile * 100:g}"
    row: list[Any] = [
        found.operation,
        _clock(found.walltime_s),
        f"{q} {_clock(found.wall_quantile_s)} of {found.wall_runs} finished runs",
        "-" if found.memory_mb is None else f"{found.memory_mb}M",
        f"{q} {_mib(found.memory_quantile_mb)} of {found.memory_runs} runs",
    ]
    print(_table(["OPERATION", "WALLTIME", "FROM", "MEMORY", "FROM"], [row]))
    print(
        f"(+{args.margin:.0%} margin; the walltime also covers the warning "
        f"{settings.slurm.warning_seconds} s before the limit and SLURM's 30 s check; "
        f"[slurm] walltime/memory = auto use these once {MIN_RUNS} runs back them)"
    )
    if found.at_limit:
        jobs = sorted(found.at_limit)
        shown = ", ".join(jobs[:5]) + (" ..." * (len(jobs) > 5))
        print(
            f"{found.at_limit_attempts} attempt(s) of {len(jobs)} job(s) were preempted at the "
            f"time limit: the walltime was too short ({shown})."
        )
    if found.stalled:
        print(f"{found.stalled} attempt(s) were preempted as stalled ([workflow] on_stall).")
    sys.stdout.flush()
    return 0


def register(commands: Commands) -> None:
    """Add `aexp resources`: its options, help text and examples."""
    sub = commands.add(
        "resources",
        "walltime and memory per operation, suggested from past attempts",
        "  aexp resources\n  aexp resources --quantile 0.9 --margin 0.5\n  aexp resources --json",
        cmd_resources,
    )
    sub.add_argument(
        "--quantile",
        type=_fraction,
        default=0.95,
        help="the quantile of past runs to size for (default 0.95; 1: the largest)",
    )
    sub.add_argument(
        "--margin", type=_fraction, default=0.25, help="added on top, as a fraction (default 0.25)"
    )
    sub.add_argument("--json", action="store_true", help=f"one JSON document ({SCHEMA})")
