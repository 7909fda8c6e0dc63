"""`aexp new-run`: create (or find) the job of each state point of a sweep and print its id
(aexp.writes.jobs.create_sweep; `--json`: aexp.new-run/1; `--plan`: a plan for aexp apply)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from aexp.cli.apply import add_plan_options, plan_of
from aexp.cli.output import _dump, _warn
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project
from aexp.cli.sweep import parse_sp


def cmd_new_run(args: argparse.Namespace) -> int:
    from aexp.agent.actor import current_actor
    from aexp.writes.jobs import create_sweep

    points = parse_sp(args.sp, warn=_warn)
    if args.plan:
        write = {"experiment": args.experiment, "hypothesis": args.hypothesis, "sp": args.sp}
        return plan_of(args, "create_sweep", write)
    project = _project(args)

    def each(entry: dict[str, Any]) -> None:
        if args.json:
            return
        if args.dry_run:
            print(f"{entry['job_id']}\t{json.dumps(entry['statepoint'])}")
        else:
            print(entry["job_id"], flush=True)

    actor = current_actor("aexp new-run", root=project.path)
    doc = create_sweep(
        project,
        args.experiment,
        args.hypothesis,
        points,
        actor=actor,
        dry_run=args.dry_run,
        each=each,
    )
    if args.json:
        print(_dump(doc))
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
    add_plan_options(sub)
