"""`aexp list-runs`: the runs a tracker backend holds for a project. W&B offline runs are read
from the job folders without network (`aexp.wandb_offline`); other backends are asked through
their adapter.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from aexp.cli.output import _dump, _table, _warn
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _adapter, _project, _tracker_target


def cmd_list_runs(args: argparse.Namespace) -> int:
    from aexp.settings import load_settings

    project = _project(args)
    settings = load_settings(project.path)
    backend, name, entity = _tracker_target(args, settings)
    online = (not settings.offline) if args.online is None else args.online
    workspace = project.workspace
    extras: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if backend == "wandb" and not online:
        from aexp.wandb_offline import record_class, scan_offline_runs

        record_class()  # wandb missing: one clear error before scanning anything
        runs = scan_offline_runs(workspace, name, args.group_prefix, problems=problems)
        records = [run.record for run in runs]
        for run in runs:
            extras[run.run_id] = {
                "synced": run.synced,
                "fragments": [
                    {
                        key: getattr(f, key)
                        for key in (
                            "path",
                            "start_time",
                            "state",
                            "exit_code",
                            "first_step",
                            "last_step",
                            "synced",
                            "torn",
                        )
                    }
                    for f in run.fragments
                ],
            }
    elif not os.path.isdir(workspace) and backend == "noop":
        records = []
    else:
        adapter = _adapter(backend, entity, workspace)
        records = adapter.list_runs(project=name, group_prefix=args.group_prefix)
    records.sort(key=lambda r: (r.group, str(r.config.get("job_id", "")), r.id))
    for problem in problems:
        _warn(f"skipped {problem}")
    if args.json:
        print(_dump([{**dataclasses.asdict(r), **extras.get(r.id, {})} for r in records]))
        return 0
    if not records:
        where = f" with group prefix {args.group_prefix!r}" if args.group_prefix else ""
        print(f"no {backend} runs in project {name!r}{where}.", file=sys.stderr)
        return 0
    header = ["RUN", "STATE", "EXIT", "GROUP", "JOB"]
    if extras:
        header += ["FRAGMENTS", "SYNCED"]
    rows = []
    for r in records:
        row = [r.id, r.state, r.exit_code, r.group, r.config.get("job_id")]
        if extras:
            info = extras.get(r.id, {})
            row += [len(info.get("fragments", [])), "yes" if info.get("synced") else "no"]
        rows.append(row)
    print(_table(header, rows))
    return 0


def register(commands: Commands) -> None:
    """Add `aexp list-runs`: its options, help text and examples."""
    sub = commands.add(
        "list-runs",
        "list the runs a tracker backend holds for a project",
        "  aexp list-runs --backend wandb --project ecg-inquiry-eval --group-prefix H012/\n\n"
        "W&B offline runs are read from the job folders (workspace/*/wandb/offline-run-*),\n"
        "without network; --online asks the W&B server instead.",
        cmd_list_runs,
    )
    sub.add_argument("--backend", metavar="NAME", help="tracker backend ([tracker] backend)")
    sub.add_argument("--project", metavar="P", help="tracker project ([tracker] project)")
    sub.add_argument("--entity", metavar="E", help="W&B team or user (with --online)")
    sub.add_argument(
        "--group-prefix", default="", metavar="PREFIX", help="e.g. H012/ or H012/E018/"
    )
    where = sub.add_mutually_exclusive_group()
    where.add_argument(
        "--offline", dest="online", action="store_const", const=False, default=None,
        help="read local W&B offline runs (default when signac.rc says offline = true)",
    )  # fmt: skip
    where.add_argument(
        "--online", dest="online", action="store_const", const=True, help="query the W&B server"
    )
    sub.add_argument("--json", action="store_true", help="print a JSON list")
