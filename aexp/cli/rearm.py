"""`aexp rearm`: make failed runs eligible for execute again, keeping their run id."""

from __future__ import annotations

import argparse

from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project


def cmd_rearm(args: argparse.Namespace) -> int:
    from aexp.rearming import check_rearmable, rearm

    project = _project(args)
    jobs = _jobs(project, args.job_ids)
    for job in jobs:  # check all before changing any
        check_rearmable(job)
    for job in jobs:
        binding = rearm(job)
        print(f"re-armed {job.id} (run {binding['run_id']}): eligible for execute again")
    return 0


def register(commands: Commands) -> None:
    """Add `aexp rearm`: its options, help text and examples."""
    sub = commands.add(
        "rearm",
        "make failed runs eligible for execute again (same run id)",
        "  aexp rearm 5d1f4c3e\n"
        "  aexp runs --state failed -q | aexp rearm -      (every failed run)",
        cmd_rearm,
    )
    sub.add_argument(
        "job_ids", nargs="+", metavar="JOB", help="job id, unique prefix or run id; - reads stdin"
    )
