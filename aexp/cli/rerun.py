"""`aexp rerun`: run ended jobs again as NEW runs (new run id), keeping each old run's record.

The counterpart of `aexp rearm` (the same failed run continued); aexp/rerun.py says which to use.
"""

from __future__ import annotations

import argparse
import os

from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project


def cmd_rerun(args: argparse.Namespace) -> int:
    from aexp.rerun import check_rerunnable, rerun

    project = _project(args)
    jobs = _jobs(project, args.job_ids)
    for job in jobs:  # check all before changing any
        check_rerunnable(job, force=args.force)
    for job in jobs:
        binding, old, moved = rerun(job, force=args.force)
        kept = os.path.relpath(os.path.join(job.path, "tracker_log", old["run_id"]))
        files = f"; moved {', '.join(moved)} there" if moved else ""
        code = "-" if old["exit_code"] is None else old["exit_code"]
        print(
            f"rerun {job.id}: new run {binding['run_id']} (bound, eligible for execute); "
            f"previous run {old['run_id']} ({old['state']}, exit code {code}) kept in "
            f"{kept}{files}"
        )
    return 0


def register(commands: Commands) -> None:
    """Add `aexp rerun`: its options, help text and examples."""
    sub = commands.add(
        "rerun",
        "run ended jobs again as new runs (new run id; the old run's record is kept)",
        "  aexp rerun 5d1f4c3e\n"
        "  aexp runs --state failed -q | aexp rerun -      (every failed job, from scratch)\n\n"
        "rerun: a NEW run (after fixing the experiment); rearm: the same failed run continued.",
        cmd_rerun,
    )
    sub.add_argument(
        "job_ids", nargs="+", metavar="JOB", help="job id, unique prefix or run id; - reads stdin"
    )
    sub.add_argument(
        "--force",
        action="store_true",
        help="rerun even when the old run has not been synced (it then stays in the job only)",
    )


__all__ = ["cmd_rerun", "register"]
