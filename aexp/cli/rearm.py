"""`aexp rearm`: make failed runs eligible for execute again, keeping their run id
(aexp.writes.jobs.rearm_jobs; `--json`: aexp.rearm/1; `--plan`: a plan for aexp apply)."""

from __future__ import annotations

import argparse

from aexp.cli.apply import add_plan_options, plan_of
from aexp.cli.output import _dump
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project


def cmd_rearm(args: argparse.Namespace) -> int:
    from aexp.agent.actor import current_actor
    from aexp.writes.jobs import rearm_jobs

    project = _project(args)
    jobs = _jobs(project, args.job_ids)
    if args.plan:
        return plan_of(args, "rearm", {"jobs": [job.id for job in jobs]})
    doc = rearm_jobs(jobs, actor=current_actor("aexp rearm", root=project.path))
    if args.json:
        print(_dump(doc))
        return 0
    for done in doc["jobs"]:
        print(f"re-armed {done['job_id']} (run {done['run_id']}): eligible for execute again")
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
    add_plan_options(sub)
