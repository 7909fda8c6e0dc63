"""`aexp remove`: delete jobs of the sweep (their workspace directories, runs and files), after
a confirmation, never while another process works on one of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from aexp.cli.output import _table
from aexp.cli.parsing import Commands, UsageError
from aexp.cli.resolve import _jobs, _project
from aexp.cli.runs import add_selection_options, selection_of
from aexp.errors import AexpError, JobBusyError


def _busy_reason(job: Any, stale_after: float) -> str | None:
    """Why another process is working on the job (None: it is free). Takes and releases the
    job's claim (aexp.joblock.job_claim), and reads a running attempt's heartbeat, which
    covers an attempt on another host of a file system whose locks do not reach across."""
    from aexp.jobdoc import read_doc
    from aexp.joblock import job_claim
    from aexp.schema import RUNNING
    from aexp.state import job_state

    try:
        with job_claim(job):
            doc = read_doc(job, fresh=True)
    except JobBusyError as exc:
        return str(exc)
    except AexpError:  # an unreadable document: nothing can be running it through aexp
        return None
    seen = job_state(job, doc, stale_after=stale_after)
    if seen.state == RUNNING and not seen.stale:
        return f"job {job.id} is executing (heartbeat {seen.mark.heartbeat_at})."
    return None


def cmd_remove(args: argparse.Namespace) -> int:
    from aexp.joblock import job_claim
    from aexp.results import iter_records
    from aexp.settings import load_settings

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
        selection = dataclasses.replace(selection, job_ids=frozenset(j.id for j in named))
    records = list(iter_records(project, selection, group_by=settings.group_by))
    if not records:
        print("no jobs match; nothing removed.", file=sys.stderr)
        return 0
    jobs = {r.job_id: project.open_job(id=r.job_id) for r in records}
    busy = [reason for job in jobs.values() if (reason := _busy_reason(job, settings.stale_after))]
    if busy:
        more = f" (and {len(busy) - 1} more)" if len(busy) > 1 else ""
        raise AexpError(f"{busy[0]}{more} Nothing removed; wait for it, or leave it out.")
    rows = [(r.job_id, r.state, r.run_id, r.group) for r in records]
    print(_table(("JOB", "STATE", "RUN", "GROUP"), rows))
    noun = "1 job" if len(records) == 1 else f"{len(records)} jobs"
    these = "this job" if len(records) == 1 else f"these {noun}"
    if not args.yes:
        if "-" in (args.job_ids or []) or not sys.stdin or sys.stdin.closed:
            raise UsageError("the job ids came from stdin, so there is no one to ask; pass --yes.")
        print(f"Remove {these}, with their runs and files? [y/N] ", end="", file=sys.stderr)
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("nothing removed.", file=sys.stderr)
            return 1
    removed, failed = 0, 0
    for record in records:
        job = jobs[record.job_id]
        try:
            with job_claim(job):
                job.remove()  # signac's own removal: the job's directory and everything in it
        except JobBusyError as exc:
            print(f"aexp: warning: {exc} Not removed.", file=sys.stderr)
            failed += 1
            continue
        removed += 1
        run = f" (run {record.run_id}, {record.state})" if record.run_id else " (no run)"
        print(f"removed {record.job_id}{run}")
    print(
        f"removed {removed} of {noun}; runs already synced stay on their tracker's server.",
        file=sys.stderr,
    )
    return 1 if failed else 0


def register(commands: Commands) -> None:
    """Add `aexp remove`: its options, help text and examples."""
    sub = commands.add(
        "remove",
        "delete jobs with their runs and files (asks first; --yes does not)",
        "  aexp remove 5d1f4c3e\n"
        "  aexp remove --experiment E018 --where seed=3..4\n"
        "  aexp runs --state failed -q | aexp remove - --yes\n\n"
        "Jobs another process works on are refused (nothing is removed). Runs already synced\n"
        "to W&B or MLflow stay there.",
        cmd_remove,
    )
    sub.add_argument(
        "job_ids", nargs="*", metavar="JOB", help="job id, unique prefix or run id; - reads stdin"
    )
    add_selection_options(sub)
    sub.add_argument("--all", action="store_true", help="every job of the project")
    sub.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


__all__ = ["cmd_remove", "register"]
