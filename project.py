"""The workflow: every job is bound to a tracker run, executed inside it, finished, then synced.

    python project.py run          run every eligible operation here
    python project.py submit       send them to SLURM (compute nodes log offline)
    python project.py status -d    where every job and its run stand

Each job moves   init_tracker -> execute -> finish -> sync_offline   and every step is keyed on
`job.doc["tracker"]` (docs/job-document.md), so re-running after a crash converges. The
experiment itself lives in experiment.py; settings in signac.rc; the machinery in aexp/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flow import FlowProject

from aexp import AexpError, load_settings
from aexp import workflow as wf
from aexp.sync import can_sync_here, sync_jobs
from experiment import experiment

try:
    SETTINGS = load_settings(Path(__file__).parent)
except AexpError as exc:
    sys.exit(f"error: {exc}")
STALE_AFTER = SETTINGS.stale_after


class Project(FlowProject):
    """The template's project; add operations below the four that ship with it."""

    def submit(self, *args, names=None, **kwargs):
        # One SLURM job per sweep point runs bind, execute and finish in one process (one live
        # tracker run); sync_offline needs network and never goes to a compute node.
        return super().submit(*args, names=names or ["run_job"], **kwargs)


# The operations one compute-node allocation runs for a job, in one process.
run_job = Project.make_group("run_job")


# -- labels: `status` as a dashboard ----------------------------------------------------------
@Project.label
def backend(job):
    return wf.backend_label(job)


@Project.label
def state(job):
    return wf.state_label(job)


@Project.label
def stale(job):
    return wf.stale_label(job, STALE_AFTER)


@Project.label
def unsynced(job):
    return wf.needs_sync(job)


@Project.label
def corrupt(job):
    return wf.is_corrupt(job)


# -- operations -------------------------------------------------------------------------------
@run_job
@Project.pre(wf.is_unbound)
@Project.post(wf.is_bound)
@Project.operation
def init_tracker(job):
    """Bind the job to a new run of the backend in signac.rc (no W&B files yet)."""
    wf.init_tracker(job, SETTINGS)


@run_job
@Project.pre(lambda job: wf.can_execute(job, STALE_AFTER))
@Project.post(wf.execute_ended)
@Project.operation(directives={"np": 1, "walltime": 1})
def execute(job):
    """Run experiment.py's `experiment` inside the bound run; a preempted attempt resumes."""
    wf.execute(job, experiment, SETTINGS)


@run_job
@Project.pre(wf.execute_ended)
@Project.post(wf.is_finished)
@Project.operation
def finish(job):
    """Close the run with its exit code, log result files, record the final state."""
    wf.finish(job)


@Project.pre(wf.needs_sync)
@Project.pre(lambda job: can_sync_here())
@Project.post(wf.is_synced)
@Project.operation
def sync_offline(job):
    """Upload the finished offline W&B run (login node only; compute nodes have no network)."""
    sync_jobs([job], SETTINGS)


if __name__ == "__main__":
    Project().main()
