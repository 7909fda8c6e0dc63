"""`aexp new-run`: create (or find) the job of each state point of a sweep and print its id."""

from __future__ import annotations

import argparse
import json

from aexp.cli.output import _warn
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project
from aexp.cli.sweep import parse_sp


def cmd_new_run(args: argparse.Namespace) -> int:
    from aexp.jobs import check_id, create_run, full_statepoint

    points = parse_sp(args.sp, warn=_warn)
    check_id("experiment_id", args.experiment)  # before the first job, --dry-run included
    check_id("hypothesis_id", args.hypothesis)
    # Every point is checked before the first job is made: a sweep whose fifth point signac
    # would refuse (a key with a dot, lr=1e400) leaves nothing on disk, not four jobs.
    for point in points:
        full_statepoint(args.experiment, args.hypothesis, point)
    project = _project(args)
    for point in points:
        if args.dry_run:
            sp = {"hypothesis_id": args.hypothesis, "experiment_id": args.experiment, **point}
            print(f"{project.open_job(sp).id}\t{json.dumps(sp)}")
            continue
        job = create_run(
            experiment_id=args.experiment,
            hypothesis_id=args.hypothesis,
            statepoint=point,
            project=project,
        )
        print(job.id, flush=True)
    return 0


def register(commands: Commands) -> None:
    """Add `aexp new-run`: its options, help text and examples."""
    sub = commands.add(
        "new-run",
        "create (or find) the job of each state point and print its id",
        "  aexp new-run --experiment E018 --hypothesis H012 --sp condition=full,seed=0\n"
        "  aexp new-run --experiment E018 --hypothesis H012 --sp 'condition=full|ablated' "
        "--sp seed=0..4\n\n"
        "--sp grammar: key=value pairs separated by ','; values are typed: 3 (int), 0.5 or 1e-3\n"
        "(float), true/false, null, \"quoted\" or 'quoted' (always a string), anything else is\n"
        "a string. A|B|C sweeps over alternatives, START..END over whole numbers (inclusive);\n"
        "a.b=1 sets a nested key. Repeated --sp flags add keys; the sweep is their cross\n"
        "product, one job id printed per line. Quote the argument in the shell when it holds\n"
        "'|' or quotes.",
        cmd_new_run,
    )
    sub.add_argument("--experiment", required=True, metavar="E", help="experiment id (Limina)")
    sub.add_argument("--hypothesis", required=True, metavar="H", help="hypothesis id (Limina)")
    sub.add_argument(
        "--sp",
        action="append",
        default=[],
        metavar="KEY=VALUE[,...]",
        help="state point keys (repeatable; see the grammar below)",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="print each job id and state point without creating anything",
    )
