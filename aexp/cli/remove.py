"""`aexp remove`: delete jobs of the sweep (their workspace directories, runs and files), after
a confirmation, never while another process works on one of them, and never a run that exists
nowhere else without `--force` (aexp.writes.jobs; `--json`: aexp.remove/1; `--plan`).

A run that ran (any state but bound) and has not reached every backend that receives runs from a
login node (W&B offline, MLflow: aexp.sync.rules.unsynced_backends), or a previous run a rerun
kept that has not, exists only in its job: deleting the job deletes it for good. Such runs are
named, and the removal refused unless `--force` (then the prompt and the summary name them).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from aexp.cli.apply import add_plan_options, plan_of
from aexp.cli.output import _dump, _table
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project
from aexp.cli.runs import add_selection_options, selection_of
from aexp.errors import UsageError


def _refuse_damaged(jobs: list) -> None:
    """A named job whose state point cannot be read is not left out as "no match" (its run and
    files would stay while the command said nothing matched): the command ends as any other
    does on it, with the repair to make first (aexp.door; on a terminal it offers the repair)."""
    from signac.errors import JobsCorruptedError

    from aexp.statepoints import statepoint_problem

    damaged = [job.id for job in jobs if statepoint_problem(job)]
    if damaged:
        raise JobsCorruptedError(damaged)


def cmd_remove(args: argparse.Namespace) -> int:
    from aexp.agent.actor import current_actor
    from aexp.results import iter_records
    from aexp.settings import load_settings
    from aexp.writes.jobs import check_removable, lost_runs, remove_jobs

    selection = selection_of(args)
    filtered = bool(selection.describe())
    if not args.job_ids and not filtered and not args.all:
        raise UsageError(
            "name the jobs to remove (ids, or - for stdin), select them with --where, "
            "--experiment, --hypothesis or --state, or pass --all."
        )
    if args.all and (args.job_ids or filtered):
        raise UsageError("--all removes every job; do not combine it with jobs or filters.")
    project = _project(args)
    settings = load_settings(project.path)
    if args.job_ids:
        named = _jobs(project, args.job_ids)
        _refuse_damaged(named)
        selection = dataclasses.replace(selection, job_ids=frozenset(j.id for j in named))
    records = list(iter_records(project, selection, group_by=settings.group_by))
    if not records:
        print("no jobs match; nothing removed.", file=sys.stderr)
        return 0
    if args.plan:
        return plan_of(args, "remove", {"jobs": [r.job_id for r in records], "force": args.force})
    check_removable(project, records, stale_after=settings.stale_after, force=args.force)
    rows = [(r.job_id, r.state, r.run_id, r.group) for r in records]
    table = sys.stderr if args.json else sys.stdout  # stdout is the document's
    print(_table(("JOB", "STATE", "RUN", "GROUP"), rows), file=table)
    noun = "1 job" if len(records) == 1 else f"{len(records)} jobs"
    these = "this job" if len(records) == 1 else f"these {noun}"
    if not args.yes:
        if "-" in (args.job_ids or []) or not sys.stdin or sys.stdin.closed:
            raise UsageError("the job ids came from stdin, so there is no one to ask; pass --yes.")
        lost = lost_runs(project, records)
        never = (
            f" ({len(lost)} run(s) never synced, lost for good: {'; '.join(lost)})" if lost else ""
        )
        print(f"Remove {these}, with their runs and files{never}? [y/N] ", end="", file=sys.stderr)
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("nothing removed.", file=sys.stderr)
            return 0  # declining is not an error
    actor = current_actor("aexp remove", root=project.path)
    doc = remove_jobs(project, records, actor=actor, force=args.force)
    for failed in doc["failed"]:
        print(f"aexp: warning: {failed['reason']} Not removed.", file=sys.stderr)
    if args.json:
        print(_dump(doc))
        return 1 if doc["failed"] else 0
    deleted = []
    for removed in doc["removed"]:
        run = (
            f" (run {removed['run_id']}, {removed['state']})" if removed["run_id"] else " (no run)"
        )
        print(f"removed {removed['job_id']}{run}")
        deleted += [f"job {removed['job_id']} {run}" for run in removed["unsynced"]]
    closing = (
        f"removed {doc['count']} of {noun}; runs already synced stay on their tracker's server"
    )
    if deleted:
        closing += f"; deleted for good, never synced: {'; '.join(deleted)}"
    print(closing + ".", file=sys.stderr)
    return 1 if doc["failed"] else 0


def register(commands: Commands) -> None:
    """Add `aexp remove`: its options, help text and examples."""
    sub = commands.add(
        "remove",
        "delete jobs with their runs and files (asks first; --yes does not)",
        "  aexp remove 5d1f4c3e\n"
        "  aexp remove --experiment E018 --where seed=3..4\n"
        "  aexp runs --state failed -q | aexp remove - --yes\n\n"
        "Jobs another process works on are refused (nothing is removed), and so are runs that\n"
        "exist only in their job (not synced to W&B or MLflow yet) unless --force. Runs already\n"
        "synced stay on their tracker's server. Declining the prompt exits 0.",
        cmd_remove,
    )
    sub.add_argument(
        "job_ids", nargs="*", metavar="JOB", help="job id, unique prefix or run id; - reads stdin"
    )
    add_selection_options(sub)
    sub.add_argument("--all", action="store_true", help="every job of the project")
    sub.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    sub.add_argument(
        "--force",
        action="store_true",
        help="also remove runs that were never synced (deleted for good)",
    )
    add_plan_options(sub)


__all__ = ["cmd_remove", "register"]
