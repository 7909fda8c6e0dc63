"""What there is to sync: the project's jobs, each read from its document.

The job document is the truth (docs/job-document.md). Every job directory of the workspace is
listed and its document read once (no signac, no wandb). A bound job needs work when one of its
backends has to receive the run from a login node (`backend_needs_sync`) and that backend's part
of the binding has no `synced_at` yet (or `resync` asks for it again):

- W&B (fed live): when the run is offline, or when W&B failed during an attempt (its part has an
  `error`). Its fragments are mended, completed from the journal and uploaded (wandb_prepare.py,
  wandb_upload.py); which fragments are synced is what the part's `state.fragments` records.
- a backend fed by replay (MLflow): when the run is finished or preempted (replay.py).

A job whose run is still executing (binding `running`, heartbeat younger than `stale_after`) is
left alone; a job whose document cannot be read is reported and skipped. This is a first look,
without the job's claim: each job is read again under its claim before anything is done to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aexp.binding import backend_parts, get_binding
from aexp.errors import BindingError
from aexp.jobdoc import JobDir, peek_doc
from aexp.jobs import find_project_root
from aexp.schema import BOUND, PREEMPTED, RUNNING
from aexp.state import is_stale, job_state
from aexp.sync.result import ALREADY_SYNCED, SET_ASIDE, STILL_EXECUTING, SyncResult, result_for
from aexp.trackers import ADAPTERS
from aexp.wandb_offline import FragmentFolder, job_fragment_folders, workspace_fragment_folders
from aexp.wandb_offline.folders import job_dirs

WANDB = "wandb"


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


def feed_of(name: str) -> str:
    """How backend `name` is fed ("live", "replay", "journal"), from the registry (no SDK)."""
    return str(getattr(ADAPTERS.get(name), "feed", "live"))


def backend_needs_sync(name: str, part: Mapping[str, Any], *, offline: bool) -> bool:
    """Whether backend `name` of a run has to receive it from a login node at all: a backend fed
    by replay always; a live one when the run is offline or the backend failed during an
    attempt (then the journal fills in what it missed); the journal itself never.
    (The same rule as aexp.workflow.conditions.needs_sync_of.)"""
    feed = feed_of(name)
    return feed == "replay" or (feed == "live" and (offline or bool(part.get("error"))))


def replay_due(binding: Mapping[str, Any]) -> bool:
    """A run is replayed once it is finished (`finished_at`) or preempted."""
    return bool(binding.get("finished_at")) or binding["state"] == PREEMPTED


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


def needs(binding: Mapping[str, Any], *, resync: bool) -> tuple[bool, list[str], bool]:
    """(W&B to sync?, replayed backends to sync, binding to finalize?) for a binding."""
    offline = bool(binding.get("offline"))
    wandb, replays, pending = False, [], False
    for name, part in backend_parts(binding).items():
        # A part already synced asks nothing (unless resync), whatever its backend: checked
        # first, so an idle pass does not import each backend's adapter to learn its feed.
        if part.get("synced_at") and not resync:
            continue
        if not backend_needs_sync(name, part, offline=offline):
            continue
        pending = pending or not part.get("synced_at")
        if name == WANDB:
            # A run that never executed (or was re-armed) has nothing new in W&B: its job is
            # not claimed, so that an attempt starting now is not refused.
            wandb = binding["state"] != BOUND
        elif feed_of(name) == "replay" and replay_due(binding):
            replays.append(name)
    finalize = not pending and bool(binding.get("finished_at")) and not binding.get("synced_at")
    return wandb, replays, finalize


def settle(
    job: JobDir, binding: dict[str, Any], fragments: list[FragmentFolder], resync: bool
) -> tuple[JobWork, list[SyncResult]]:
    """What `binding` asks of this sync, and the results of the folders it leaves alone."""
    wandb, replays, finalize = needs(binding, resync=resync)
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
        elif frag.log is None:
            results.append(result_for(frag, ok=True, skipped=_no_log(frag)))
        elif not wandb:
            parts = backend_parts(binding)
            done = bool((parts.get(WANDB) or {}).get("synced_at"))
            results.append(
                result_for(
                    frag,
                    ok=True,
                    skipped=ALREADY_SYNCED if done else "W&B is not synced from here for this run",
                )
            )
    return work, results


def _no_log(frag: FragmentFolder) -> str:
    logs = list(frag.folder.glob("run-*.wandb.empty"))
    return SET_ASIDE if logs else "no run-<id>.wandb transaction log in this folder"


def stale(doc: Mapping[str, Any], stale_after: float) -> bool:
    return is_stale(doc, stale_after)


def plan_jobs(
    workspace: str, job_ids: Iterable[str] | None, *, stale_after: float, resync: bool
) -> tuple[list[JobWork], list[SyncResult]]:
    """Read the jobs of `workspace` (only `job_ids`, if given): the jobs with work to do, and the
    results of every folder or backend that needs none."""
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
            results += [
                result_for(f, ok=True, skipped=f"job document unreadable: {exc}") for f in fragments
            ]
            continue
        if binding is None:
            results += [
                result_for(f, ok=True, skipped="the job is not bound to a run; left alone")
                for f in fragments
            ]
            continue
        seen = job_state(job, doc, stale_after=stale_after)  # an attempt's start: its journal
        if seen.state == RUNNING and not seen.stale:
            results += [result_for(f, ok=True, skipped=STILL_EXECUTING) for f in fragments]
            continue
        item, skipped = settle(job, binding, fragments, resync)
        results += skipped
        if item.busy:
            work.append(item)
    return work, results


__all__ = [
    "WANDB",
    "JobWork",
    "backend_needs_sync",
    "feed_of",
    "find_offline_runs",
    "needs",
    "plan_jobs",
    "replay_due",
    "settle",
    "stale",
]
