"""`aexp rerun`: run ended jobs again as NEW runs (new run id), keeping each old run's record.

The counterpart of `aexp rearm` (the same failed run continued); aexp/rerun.py says which to use.
"""

from __future__ import annotations

import argparse
import os

from aexp.cli.apply import add_plan_options, plan_of
from aexp.cli.output import _dump
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project


def cmd_rerun(args: argparse.Namespace) -> int:
    from aexp.agent.actor import current_actor
    from aexp.writes.jobs import rerun_jobs

    project = _project(args)
    jobs = _jobs(project, args.job_ids)
    if args.plan:
        return plan_of(args, "rerun", {"jobs": [job.id for job in jobs], "force": args.force})
    actor = current_actor("aexp rerun", root=project.path)
    doc = rerun_jobs(jobs, actor=actor, force=args.force)
    if args.json:
        print(_dump(doc))
        return 0
    for done in doc["jobs"]:
        old = done["previous_run"]
        kept = os.path.relpath(done["kept_in"])
        files = f"; moved {', '.join(done['moved'])} there" if done["moved"] else ""
        code = "-" if old["exit_code"] is None else old["exit_code"]
        print(
            f"rerun {done['job_id']}: new run {done['run_id']} (bound, eligible for execute); "
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
    add_plan_options(sub)


__all__ = ["cmd_rerun", "register"]
