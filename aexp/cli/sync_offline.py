"""`aexp sync-offline`: upload finished W&B offline runs, replay runs into backends fed by replay
(from a login node).

The sync itself is `aexp.sync.sync_offline_runs`; this module picks the jobs and reports, per
backend and in runs (aexp.sync.report): `wandb: 3 uploaded, 1 failed (...); mlflow: 4 replayed`,
the same in `--json` (schema `aexp.sync-offline/1`). An idle pass without job ids must stay cheap
(login nodes run it from cron): it loads none of signac, flow or wandb, which tests/test_sync.py
checks (see "Imports" in aexp/cli/__init__.py).
"""

from __future__ import annotations

import argparse
import sys

from aexp.cli.apply import add_plan_options, plan_of
from aexp.cli.output import _dump
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project, _project_dir
from aexp.errors import BindingError


def cmd_sync_offline(args: argparse.Namespace) -> int:
    from aexp.binding import backend_parts, get_binding
    from aexp.jobs import find_project_root
    from aexp.settings import load_settings
    from aexp.sync.rules import backend_needs_sync

    # Without job ids, sync needs job directories only, not signac (see sync_offline_runs).
    root = find_project_root(_project_dir(args))
    settings = load_settings(root)
    job_ids = None
    if args.job_ids:
        jobs = _jobs(_project(args), args.job_ids)
        for job in jobs:
            binding = get_binding(job)
            if binding is None:
                raise BindingError(f"job {job.id} is not bound to a tracker run; nothing to sync.")
            offline = bool(binding.get("offline"))
            parts = backend_parts(binding)
            if not any(backend_needs_sync(n, p, offline=offline) for n, p in parts.items()):
                kind = "online W&B" if list(parts) == ["wandb"] else "+".join(parts)
                raise BindingError(
                    f"job {job.id}'s run is a {kind} run; only W&B offline runs are synced "
                    "(and backends fed by replay, like MLflow)."
                )
        job_ids = [job.id for job in jobs]
    if args.plan:
        return plan_of(args, "sync", {"jobs": job_ids, "resync": args.resync})
    from aexp.agent.actor import current_actor
    from aexp.sync.report import failure_lines
    from aexp.sync.result import SyncResult
    from aexp.writes.sync import sync_document

    try:
        doc = sync_document(
            root,
            dry_run=args.dry_run,
            job_ids=job_ids,
            workers=args.jobs or settings.sync_workers,
            timeout=args.timeout or settings.sync_timeout,
            resync=args.resync,
            progress=sys.stderr.isatty() and not args.json,
            settings=settings,
            verbose=args.verbose,
            actor=current_actor("aexp sync-offline", root=root),
        )
    except KeyboardInterrupt:  # the sync said in one line what did not finish
        return 130
    code = 1 if doc["failed"] else 0
    if args.json:
        print(_dump(doc))
        return code
    results = [SyncResult(**r) for r in doc["results"]]
    if args.verbose:
        for r in results:
            where = (
                f"job {r.job_id} run {r.run_id} ({r.path if r.backend == 'wandb' else r.backend})"
            )
            if r.skipped:
                print(f"skipped: {where}: {r.skipped}")
            elif r.ok:
                print(f"{'would sync' if args.dry_run else 'synced'}: {where}")
    for line in failure_lines(results):
        print(line, file=sys.stderr)
    print(doc["summary"])
    return code


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def register(commands: Commands) -> None:
    """Add `aexp sync-offline`: its options, help text and examples."""
    sub = commands.add(
        "sync-offline",
        "upload finished W&B offline runs (from a login node)",
        "  aexp sync-offline --dry-run\n"
        "  aexp sync-offline --jobs 8 --timeout 300\n\n"
        "Runs already synced are skipped (unless --resync); one line per failure, then one\n"
        "line per backend, in runs: 'wandb: 3 uploaded, 1 failed (...); mlflow: 4 replayed'.\n"
        "Exit code 1 when any run failed to sync.",
        cmd_sync_offline,
    )
    sub.add_argument("job_ids", nargs="*", metavar="JOB", help="only these jobs (default: all)")
    sub.add_argument("--dry-run", action="store_true", help="show what would be synced")
    sub.add_argument(
        "--jobs", type=_positive_int, metavar="N", help="runs synced in parallel ([sync] workers)"
    )
    sub.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="seconds per run and backend ([sync] timeout)",
    )
    sub.add_argument("--resync", action="store_true", help="upload runs already synced again")
    sub.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="one line per fragment and replay; the backends' own log lines",
    )
    add_plan_options(sub)
