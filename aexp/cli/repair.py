"""`aexp repair`: rebuild jobs' lost or damaged state points from their runs' journals."""

from __future__ import annotations

import argparse
import json
import os

from aexp.cli.output import _dump
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project_dir
from aexp.errors import UsageError


def cmd_repair(args: argparse.Namespace) -> int:
    from aexp.errors import JobNotFoundError, StatepointError
    from aexp.jobdoc import JobDir
    from aexp.jobs import find_project_root, is_job_id
    from aexp.statepoints import damaged_jobs, repair_statepoint

    # signac refuses to open a job whose state point is damaged, and a prefix lookup through it
    # would read every state point: jobs are named here by their directories alone.
    workspace = os.path.join(find_project_root(_project_dir(args)), "workspace")
    if args.all:
        if args.job_ids:
            raise UsageError("give job ids or --all, not both.")
        jobs = damaged_jobs(workspace)
    elif not args.job_ids:
        raise UsageError("name the jobs to repair, or --all for every damaged one.")
    else:
        jobs = []
        names = (
            sorted(n for n in os.listdir(workspace) if is_job_id(n))
            if os.path.isdir(workspace)
            else []
        )
        for ident in args.job_ids:
            matches = [n for n in names if n.startswith(ident.strip())] if ident.strip() else []
            if len(matches) != 1:
                what = "matches no job" if not matches else f"matches {len(matches)} jobs"
                raise JobNotFoundError(f"job id {ident!r} {what} in {workspace}.")
            jobs.append(JobDir(matches[0], os.path.join(workspace, matches[0])))
    failed = 0
    report = []
    for job in jobs:
        try:
            repair = repair_statepoint(job, dry_run=args.dry_run)
        except StatepointError as exc:
            failed += 1
            report.append({"job_id": job.id, "repaired": False, "error": str(exc)})
            if not args.json:
                print(f"job {job.id}: {exc}")
            continue
        report.append(
            {
                "job_id": job.id,
                "problem": repair.problem,
                "statepoint": repair.statepoint,
                "repaired": repair.written,
            }
        )
        if args.json:
            continue
        if repair.problem is None:
            print(f"job {job.id}: its state point is intact; nothing to repair.")
        elif args.dry_run:
            print(f"job {job.id}: {repair.problem}; would rebuild {json.dumps(repair.statepoint)}")
        else:
            print(f"job {job.id}: {repair.problem}; rebuilt from its journal.")
    if args.json:
        print(_dump({"jobs": report}))
    elif args.all and not jobs:
        print("every job's state point is intact.")
    return 1 if failed else 0


def register(commands: Commands) -> None:
    """Add `aexp repair`: its options, help text and examples."""
    sub = commands.add(
        "repair",
        "rebuild lost or damaged state points from the runs' journals (results untouched)",
        "  aexp repair 5d1f4c3e\n"
        "  aexp repair --all --dry-run      (what would be rebuilt, for every damaged job)\n\n"
        "A state point is rebuilt only when it hashes to the job's id: the file is then exactly\n"
        "the one signac wrote. Nothing else in the job (results, checkpoints, journal) changes.",
        cmd_repair,
    )
    sub.add_argument("job_ids", nargs="*", metavar="JOB", help="job id or unique prefix")
    sub.add_argument("--all", action="store_true", help="every job whose state point is damaged")
    sub.add_argument("--dry-run", action="store_true", help="say what would be rebuilt")
    sub.add_argument("--json", action="store_true", help="one JSON document of what was done")
