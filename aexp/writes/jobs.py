"""Create a sweep, rearm, rerun and remove jobs: each checks every job before it changes any,
records who did it, and returns its document.

    create_sweep(project, "E018", "H012", points, actor=...)    aexp.new-run/1
    rearm_jobs(jobs, actor=...)                                  aexp.rearm/1
    rerun_jobs(jobs, force=False, actor=...)                     aexp.rerun/1
    check_removable(records, stale_after, force=False)           AexpError naming what blocks
    remove_jobs(project, records, actor=...)                     aexp.remove/1

The actor goes into each job document (aexp.agent.actor) and, with the job ids, into the
project's action log (aexp.agent.history); a removal is recorded there alone, since the job's
document goes with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aexp.agent.history import check_recordable, record_action
from aexp.contract import document, plain
from aexp.errors import AexpError, JobBusyError

NEW_RUN = "aexp.new-run/1"
REARM = "aexp.rearm/1"
RERUN = "aexp.rerun/1"
REMOVE = "aexp.remove/1"


def _root(jobs: Sequence[Any]) -> str | None:
    from aexp.jobs import project_root_of

    return project_root_of(jobs[0]) if jobs else None


def create_sweep(
    project: Any,
    experiment: str,
    hypothesis: str | None,
    points: Sequence[Mapping[str, Any]],
    *,
    actor: Mapping[str, Any],
    dry_run: bool = False,
    each: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Create (or find) the job of each state point: `aexp.new-run/1`. Every point is checked
    before the first job is made (a point signac would refuse leaves nothing on disk). `each`
    is told of each job as it is made. With `dry_run` nothing is written."""
    from aexp.jobs import check_id, create_run, full_statepoint

    check_id("experiment_id", experiment)
    if hypothesis is not None:
        check_id("hypothesis_id", hypothesis)
    statepoints = [full_statepoint(experiment, hypothesis, point) for point in points]
    if not dry_run:
        check_recordable(project.path)
    jobs = []
    for point, sp in zip(points, statepoints, strict=True):
        job = project.open_job(sp)
        new = not os.path.isfile(os.path.join(job.path, job.FN_DOCUMENT))
        if not dry_run:
            create_run(
                experiment_id=experiment,
                hypothesis_id=hypothesis,
                statepoint=point,
                project=project,
                actor=actor,
            )
        entry = {"job_id": job.id, "statepoint": plain(sp), "created": new}
        jobs.append(entry)
        if each is not None:
            each(entry)
    made = [j["job_id"] for j in jobs if j["created"]]
    if made and not dry_run:
        record_action(project.path, "create", actor, made)
    return document(
        NEW_RUN,
        experiment_id=experiment,
        hypothesis_id=hypothesis,
        dry_run=dry_run,
        count=len(jobs),
        created=len(made),
        jobs=jobs,
        actor=None if dry_run else dict(actor),
    )


def rearm_jobs(jobs: Sequence[Any], *, actor: Mapping[str, Any]) -> dict[str, Any]:
    """Make failed runs eligible for execute again, same run id: `aexp.rearm/1`. Raises
    BindingError (nothing changed) when one of them is not failed."""
    from aexp.rearming import check_rearmable, rearm

    for job in jobs:  # check all before changing any
        check_rearmable(job)
    if jobs:
        check_recordable(_root(jobs))
    done = []
    for job in jobs:
        binding = rearm(job, actor)
        done.append({"job_id": job.id, "run_id": binding["run_id"], "state": binding["state"]})
    if done:
        record_action(_root(jobs), "rearm", actor, [j["job_id"] for j in done])
    return document(REARM, count=len(done), jobs=done, actor=dict(actor))


def rerun_jobs(
    jobs: Sequence[Any], *, actor: Mapping[str, Any], force: bool = False
) -> dict[str, Any]:
    """Run ended jobs again as new runs, keeping each old run's record: `aexp.rerun/1`. Raises
    BindingError (nothing changed) when one of them cannot be rerun (aexp.rerun)."""
    from aexp.rerun import check_rerunnable, rerun

    for job in jobs:  # check all before changing any
        check_rerunnable(job, force=force)
    if jobs:
        check_recordable(_root(jobs))
    done = []
    for job in jobs:
        binding, old, moved = rerun(job, force=force, actor=actor)
        done.append(
            {
                "job_id": job.id,
                "run_id": binding["run_id"],
                "state": binding["state"],
                "previous_run": {
                    "run_id": old["run_id"],
                    "state": old["state"],
                    "exit_code": old["exit_code"],
                },
                "kept_in": os.path.join(job.path, "tracker_log", old["run_id"]),
                "moved": moved,
            }
        )
    if done:
        record_action(_root(jobs), "rerun", actor, [j["job_id"] for j in done], force=force)
    return document(RERUN, count=len(done), jobs=done, actor=dict(actor))


def busy_reason(job: Any, stale_after: float) -> str | None:
    """Why another process is working on the job (None: it is free): who holds its claim
    (aexp.joblock.claim_holder, which writes nothing), or an attempt that holds the run
    (aexp.sync.rules.executing_attempt: the job's state, its heartbeat, whatever node it runs
    on), which covers an attempt on another host of a file system whose locks do not reach
    across, and a first attempt whose start only its journal records yet."""
    from aexp.jobdoc import read_doc
    from aexp.joblock import claim_holder
    from aexp.sync.rules import executing_attempt

    holder = claim_holder(job)
    if holder is not None:
        return holder
    try:
        doc = read_doc(job, fresh=True)
        mark = executing_attempt(job, doc, stale_after)
    except AexpError:  # an unreadable document: nothing can be running it through aexp
        return None
    if mark is not None:
        where = f" on {mark.host}" if mark.host else ""
        return f"job {job.id} is executing{where} (heartbeat {mark.heartbeat_at})."
    return None


def only_here(project: Any, record: Any) -> list[str]:
    """The runs of a record's job that exist nowhere else (aexp.sync.rules.runs_only_here:
    read from its run journals): what removing the job deletes for good."""
    from aexp.sync.rules import runs_only_here

    return runs_only_here(os.path.join(project.workspace, record.job_id), record.binding)


def lost_runs(project: Any, records: Iterable[Any]) -> list[str]:
    """`job <id> run <id> (not on ...)` for every run of `records` that exists nowhere else."""
    return [f"job {r.job_id} {run}" for r in records for run in only_here(project, r)]


def check_removable(
    project: Any, records: Iterable[Any], *, stale_after: float, force: bool = False
) -> None:
    """AexpError (nothing removed) when another process works on one of the jobs, or, unless
    `force`, when one holds a run that exists nowhere else (not synced yet)."""
    records = list(records)
    busy = [
        reason
        for r in records
        if (reason := busy_reason(project.open_job(id=r.job_id), stale_after))
    ]
    if busy:
        more = f" (and {len(busy) - 1} more)" if len(busy) > 1 else ""
        raise AexpError(f"{busy[0]}{more} Nothing removed; wait for it, or leave it out.")
    lost = lost_runs(project, records)
    if lost and not force:
        raise AexpError(
            f"{len(lost)} run(s) exist only in their jobs, not synced yet: {'; '.join(lost)}. "
            "Nothing removed; sync them first (aexp sync-offline, from a login node), or pass "
            "--force (force=true to the remove tool) to delete them for good."
        )


def remove_jobs(
    project: Any, records: Sequence[Any], *, actor: Mapping[str, Any], force: bool = False
) -> dict[str, Any]:
    """Delete the jobs of `records` (aexp.results.JobRecord) with their runs and files, each
    under its claim: `aexp.remove/1`. A job another process took meanwhile is left (`failed`);
    call `check_removable` first."""
    from aexp.joblock import job_claim

    if records:
        check_recordable(project.path)
    removed, failed = [], []
    for record in records:
        job = project.open_job(id=record.job_id)
        unsynced = only_here(project, record)  # read from its journals, before they go
        try:
            with job_claim(job):
                job.remove()  # signac's own removal: the job's directory and everything in it
        except JobBusyError as exc:
            failed.append({"job_id": record.job_id, "reason": str(exc)})
            continue
        removed.append(
            {
                "job_id": record.job_id,
                "run_id": record.run_id,
                "state": record.state,
                "group": record.group,
                "unsynced": unsynced,
            }
        )
    if removed:
        runs = {r["job_id"]: r["run_id"] for r in removed}
        record_action(project.path, "remove", actor, list(runs), runs=runs, force=force)
    return document(REMOVE, count=len(removed), removed=removed, failed=failed, actor=dict(actor))


__all__ = [
    "NEW_RUN",
    "REARM",
    "REMOVE",
    "RERUN",
    "busy_reason",
    "check_removable",
    "create_sweep",
    "lost_runs",
    "only_here",
    "rearm_jobs",
    "remove_jobs",
    "rerun_jobs",
]
