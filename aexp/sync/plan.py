"""What there is to sync: the project's jobs, each read from its document.

The job document is the truth (docs/job-document.md). Every job directory of the workspace is
listed and its document read once (no signac, no wandb). A bound job needs work when its run is
due (finished or preempted: rules.sync_due) and one of its backends has to receive the run from a
login node (rules.backend_needs_sync) and that backend's part of the binding has no `synced_at`
yet (or `resync` asks for it again):

- W&B (fed live): when the run is offline, or when W&B failed during an attempt (its part has an
  `error`). Its fragments are mended, completed from the journal and uploaded (wandb_prepare.py,
  wandb_upload.py); which fragments are synced is what the part's `state.fragments` records, and
  an upload a sync left in flight (`inflight`) is settled from the server first
  (wandb_settle.py).
- a backend fed by replay (MLflow): replay.py.

A job whose run is still executing (rules.still_executing) is left alone; a job whose document
cannot be read (aexp/schema.py: a field of the wrong type) is one failed result, `corrupt`, and
nothing of it is touched. This is a first look, without the job's claim: each job is read again
under its claim before anything is done to it. The same rules decide the workflow's `unsynced`
label and the `sync_offline` operation's eligibility (rules.needs_sync).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aexp.binding import backend_parts, get_binding
from aexp.errors import BindingError
from aexp.jobdoc import JobDir, peek_doc
from aexp.jobs import find_project_root
from aexp.schema import BOUND, RUNNING
from aexp.sync.result import (
    ALREADY_SYNCED,
    SET_ASIDE,
    STILL_EXECUTING,
    SyncResult,
    job_result,
    result_for,
)
from aexp.sync.rules import backend_needs_sync, feed_of, still_executing, sync_due
from aexp.wandb_offline import FragmentFolder, job_fragment_folders, workspace_fragment_folders
from aexp.wandb_offline.folders import job_dirs

WANDB = "wandb"
replay_due = sync_due  # the name before preempted W&B runs were synced too


def find_offline_runs(root: str | os.PathLike = ".") -> list[Path]:
    """Every W&B offline-run folder of the project at or above `root`, sorted by job id and then
    start time: `<project>/workspace/<job_id>/wandb/offline-run-*`.

    One listing of the workspace and one of each job's `wandb/` directory: the cost grows with
    the number of jobs, not with the files inside runs. Raises ProjectNotFoundError outside a
    signac project.
    """
    workspace = Path(find_project_root(root), "workspace")
    return [
        f.folder for fragments in workspace_fragment_folders(workspace).values() for f in fragments
    ]


@dataclass
class JobWork:
    """One job and what its binding asks of this sync (see the module docstring)."""

    job: JobDir
    binding: dict[str, Any]
    fragments: list[FragmentFolder]  # every offline-run folder of the job, start-time order
    wandb: bool = False  # W&B fragments of the bound run to mend, complete and upload
    replays: list[str] = field(default_factory=list)  # replayed backends to bring up to date
    finalize: bool = False  # every backend synced, but the binding does not say so yet

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def run_id(self) -> str:
        return str(self.binding["run_id"])

    @property
    def busy(self) -> bool:
        return self.wandb or bool(self.replays) or self.finalize

    def run_fragments(self) -> list[FragmentFolder]:
        """The folders of the bound run."""
        return [f for f in self.fragments if f.run_id == self.run_id]


def needs(
    binding: Mapping[str, Any], *, resync: bool, only: Collection[str] | None = None
) -> tuple[bool, list[str], bool]:
    """(W&B to sync?, replayed backends to sync, binding to finalize?) for a binding; `only`:
    the backends this sync may work on (None: every one)."""
    if binding.get("synced_at") and not resync:  # the run reached every backend it needs
        return False, [], False
    offline = bool(binding.get("offline"))
    due = sync_due(binding)
    wandb, replays, pending = False, [], False
    for name, part in backend_parts(binding).items():
        # A part already synced asks nothing (unless resync), whatever its backend: checked
        # first, so an idle pass does not import each backend's adapter to learn its feed.
        if part.get("synced_at") and not resync:
            continue
        if not backend_needs_sync(name, part, offline=offline):
            continue
        pending = pending or not part.get("synced_at")
        if not due or (only is not None and name not in only):
            continue
        if name == WANDB:
            wandb = True
        elif feed_of(name) == "replay":
            replays.append(name)
    finalize = not pending and bool(binding.get("finished_at")) and not binding.get("synced_at")
    return wandb, replays, finalize


def not_due(binding: Mapping[str, Any]) -> str:
    """Why a run that is not due is left alone (rules.sync_due)."""
    if binding["state"] == BOUND:
        return "the run has not executed yet"
    if binding["state"] == RUNNING:
        return (
            "its attempt died without recording its end; `python project.py run` resumes it, "
            "and it is synced once it ends or is preempted"
        )
    return f"the run is {binding['state']}, not finished or preempted"


def settle(
    job: JobDir,
    binding: dict[str, Any],
    fragments: list[FragmentFolder],
    resync: bool,
    only: Collection[str] | None = None,
) -> tuple[JobWork, list[SyncResult]]:
    """What `binding` asks of this sync, and the results of the folders it leaves alone."""
    wandb, replays, finalize = needs(binding, resync=resync, only=only)
    work = JobWork(job, binding, fragments, wandb=wandb, replays=replays, finalize=finalize)
    results = []
    for frag in fragments:
        if frag.run_id != work.run_id:
            results.append(
                result_for(
                    frag,
                    ok=True,
                    skipped=f"not the job's run (it is bound to run {work.run_id}); left alone",
                )
            )
        elif only is not None and WANDB not in only:
            continue  # W&B is not this sync's to speak of
        elif frag.log is None:
            results.append(result_for(frag, ok=True, skipped=_no_log(frag)))
        elif not wandb:
            part = backend_parts(binding).get(WANDB) or {}
            if part.get("synced_at"):
                why = ALREADY_SYNCED
            elif WANDB not in backend_parts(binding) or not backend_needs_sync(
                WANDB, part, offline=bool(binding.get("offline"))
            ):
                why = "W&B is not synced from here for this run"
            else:
                why = not_due(binding)
            results.append(result_for(frag, ok=True, skipped=why))
    return work, results


def _no_log(frag: FragmentFolder) -> str:
    logs = list(frag.folder.glob("run-*.wandb.empty"))
    return SET_ASIDE if logs else "no run-<id>.wandb transaction log in this folder"


def plan_jobs(
    workspace: str,
    job_ids: Iterable[str] | None,
    *,
    stale_after: float,
    resync: bool,
    only: Collection[str] | None = None,
) -> tuple[list[JobWork], list[SyncResult]]:
    """Read the jobs of `workspace` (only `job_ids`, if given): the jobs with work to do, and the
    results of every folder or backend that needs none (and of every job that cannot be read).
    `only`: the backends this sync may work on (None: every one)."""
    jobs = job_dirs(workspace, job_ids)
    work: list[JobWork] = []
    results: list[SyncResult] = []
    for job_id, path in jobs:
        job = JobDir(job_id, path)
        fragments = job_fragment_folders(path, job_id)
        try:
            doc = peek_doc(job)
            binding = get_binding(job, doc)
        except BindingError as exc:
            results.append(job_result(job_id, path, ok=False, stderr=corrupt_reason(exc)))
            continue
        if binding is None:
            results += [
                result_for(f, ok=True, skipped="the job is not bound to a run; left alone")
                for f in fragments
            ]
            continue
        if still_executing(job, doc, stale_after):
            results += [result_for(f, ok=True, skipped=STILL_EXECUTING) for f in fragments]
            continue
        item, skipped = settle(job, binding, fragments, resync, only)
        results += skipped
        if item.busy:
            work.append(item)
    return work, results


def corrupt_reason(exc: BindingError) -> str:
    """The one line a job whose document cannot be read gets."""
    return f"corrupt: {exc} Nothing of it was synced."


__all__ = [
    "WANDB",
    "JobWork",
    "backend_needs_sync",
    "corrupt_reason",
    "feed_of",
    "find_offline_runs",
    "needs",
    "not_due",
    "plan_jobs",
    "replay_due",
    "settle",
    "still_executing",
]
