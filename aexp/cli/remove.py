"""`aexp remove`: delete jobs of the sweep (their workspace directories, runs and files), after
a confirmation, never while another process works on one of them, and never a run that exists
nowhere else without `--force`.

A run that ran (any state but bound) and has not reached every backend that receives runs from a
login node (W&B offline, MLflow: aexp.sync.rules.unsynced_backends), or a previous run a rerun
kept that has not, exists only in its job: deleting the job deletes it for good. Such runs are
named, and the removal refused unless `--force` (then the prompt and the summary name them).
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
    job's claim (aexp.joblock.job_claim), and asks whether an attempt holds the run
    (aexp.sync.rules.executing_attempt: its heartbeat, whatever node it runs on), which covers an
    attempt on another host of a file system whose locks do not reach across."""
    from aexp.jobdoc import read_doc
    from aexp.joblock import job_claim
    from aexp.sync.rules import executing_attempt

    try:
        with job_claim(job):
            doc = read_doc(job, fresh=True)
    except JobBusyError as exc:
        return str(exc)
    except AexpError:  # an unreadable document: nothing can be running it through aexp
        return None
    # A first attempt's start is in its journal before the document records it: the job's
    # state (not the binding alone) says whether an attempt holds it.
    mark = executing_attempt(job, doc, stale_after)
    if mark is not None:
        where = f" on {mark.host}" if mark.host else ""
        beat = mark.heartbeat_at
        return f"job {job.id} is executing{where} (heartbeat {beat})."
    return None


def cmd_remove(args: argparse.Namespace) -> int:
    from aexp.joblock import job_claim
    from aexp.results import iter_records
    from aexp.settings import load_settings
    from aexp.sync.rules import runs_only_here

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
    only_here = {
        r.job_id: runs for r in records if (runs := runs_only_here(jobs[r.job_id].path, r.binding))
    }
    lost = [f"job {job_id} {run}" for job_id, runs in only_here.items() for run in runs]
    if lost and not args.force:
        raise AexpError(
            f"{len(lost)} run(s) exist only in their jobs, not synced yet: {'; '.join(lost)}. "
            "Nothing removed; sync them first (aexp sync-offline, from a login node), or pass "
            "--force to delete them for good."
        )
    rows = [(r.job_id, r.state, r.run_id, r.group) for r in records]
    print(_table(("JOB", "STATE", "RUN", "GROUP"), rows))
    noun = "1 job" if len(records) == 1 else f"{len(records)} jobs"
    these = "this job" if len(records) == 1 else f"these {noun}"
    if not args.yes:
        if "-" in (args.job_ids or []) or not sys.stdin or sys.stdin.closed:
            raise UsageError("the job ids came from stdin, so there is no one to ask; pass --yes.")
        never = (
            f" ({len(lost)} run(s) never synced, lost for good: {'; '.join(lost)})" if lost else ""
        )
        print(f"Remove {these}, with their runs and files{never}? [y/N] ", end="", file=sys.stderr)
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("nothing removed.", file=sys.stderr)
            return 0
    removed, failed, deleted = 0, 0, []
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
        deleted += [f"job {record.job_id} {run}" for run in only_here.get(record.job_id, [])]
        run = f" (run {record.run_id}, {record.state})" if record.run_id else " (no run)"
        print(f"removed {record.job_id}{run}")
    closing = f"removed {removed} of {noun}; runs already synced stay on their tracker's server"
    if deleted:
        closing += f"; deleted for good, never synced: {'; '.join(deleted)}"
    print(closing + ".", file=sys.stderr)
    return 1 if failed else 0


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


__all__ = ["cmd_remove", "register"]
