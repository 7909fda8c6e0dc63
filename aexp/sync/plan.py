"""What there is to upload: the project's offline-run folders and, per job, its runs as the job
document describes them.

Job directories and documents are all this needs of the project: no signac import, so a pass with
nothing left to upload costs little more than the interpreter's start. A job whose run is still
executing (binding `running`, heartbeat younger than `stale_after`) is left alone; a job whose
document cannot be read is reported and skipped; a fragment that carries W&B's synced marker
counts as synced wherever it is in its run's order (it is on the server, and uploading it again
would only duplicate it) unless `resync` asks for it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aexp.binding import RUNNING, find_project_root, get_binding
from aexp.errors import BindingError
from aexp.jobdoc import JobDir, read_doc
from aexp.lifecycle import is_stale
from aexp.sync.result import ALREADY_SYNCED, STILL_EXECUTING, SyncResult, result_for
from aexp.wandb_offline import FragmentFolder, workspace_fragment_folders

RunKey = tuple[str, str]  # (job id, run id)


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
class Run:
    """The fragments of one run id in one job, and what the job document says about it."""

    job_id: str
    run_id: str
    fragments: list[FragmentFolder]
    binding: dict[str, Any] | None  # the job's binding if it is bound to this run id
    project: str | None = None
    entity: str | None = None


@dataclass
class Plan:
    """What one sync has to do, and what it has settled so far."""

    workspace: str
    found: dict[str, list[FragmentFolder]]  # every fragment, by job, in start-time order
    runs: dict[RunKey, Run] = field(default_factory=dict)
    # Per run, in start-time order, the fragments left to upload.
    todo: dict[RunKey, list[FragmentFolder]] = field(default_factory=dict)
    # One result per fragment settled so far (skipped ones from the start).
    results: dict[Path, SyncResult] = field(default_factory=dict)

    def job_dir(self, job_id: str) -> JobDir:
        """The directory of job `job_id` (what jobdoc reads and updates)."""
        return JobDir(job_id, os.path.join(self.workspace, job_id))

    def ordered_results(self) -> list[SyncResult]:
        """The results settled so far, by job id and then start time, as `found` lists them."""
        position = {
            frag.folder: (job_id, i)
            for job_id, frags in self.found.items()
            for i, frag in enumerate(frags)
        }
        return [
            self.results[p]
            for p in sorted(self.results, key=lambda path: position.get(path, ("", 0)))
        ]


def plan_sync(
    workspace: str, job_ids: Iterable[str] | None, *, stale_after: float, resync: bool
) -> Plan:
    """Read the fragments of `workspace` (only of `job_ids`, if given) and the documents of their
    jobs; returns the Plan, with a result for every fragment that needs no upload."""
    plan = Plan(workspace, workspace_fragment_folders(Path(workspace), job_ids))
    for job_id, fragments in plan.found.items():
        job = plan.job_dir(job_id)
        try:
            doc = read_doc(job)
            binding = get_binding(job, doc)
        except BindingError as exc:
            for frag in fragments:
                plan.results[frag.folder] = result_for(
                    frag, ok=True, skipped=f"job document unreadable: {exc}"
                )
            continue
        executing = binding is not None and binding["state"] == RUNNING
        if executing and not is_stale(doc, stale_after):
            for frag in fragments:
                plan.results[frag.folder] = result_for(frag, ok=True, skipped=STILL_EXECUTING)
            continue
        by_run: dict[str, list[FragmentFolder]] = {}
        for frag in fragments:
            if frag.log is None:
                plan.results[frag.folder] = result_for(
                    frag, ok=True, skipped="no run-<id>.wandb transaction log in this folder"
                )
                continue
            by_run.setdefault(frag.run_id, []).append(frag)
        for run_id, frags in by_run.items():
            mine = binding if binding is not None and binding["run_id"] == run_id else None
            extra = (mine or {}).get("extra") or {}
            plan.runs[(job_id, run_id)] = Run(
                job_id,
                run_id,
                frags,
                mine,
                project=(mine or {}).get("project") or None,
                entity=extra.get("entity") or None,
            )

    for key, run in plan.runs.items():
        left = []
        for frag in run.fragments:
            if frag.synced() and not resync:
                plan.results[frag.folder] = result_for(frag, ok=True, skipped=ALREADY_SYNCED)
            else:
                left.append(frag)
        plan.todo[key] = left
    return plan
