"""The workflow: every job is bound to a tracker run, executed inside it, finished, then synced.

    python project.py run          run every eligible operation here
    python project.py submit       send them to SLURM (compute nodes log offline)
    python project.py status -d    where every job and its run stand

Each job moves   init_tracker -> execute -> finish -> sync_offline   and every step is keyed on
the job's state (its `job.doc["tracker"]` and its run's journal: docs/job-document.md), so
running again after a crash converges. The experiment itself lives in experiment.py; the
settings in signac.rc; flow's machinery (checks, the pass summary, submission) in
aexp/workflow/project.py. Add an operation below the four: decorate a function of `job`.
"""

from __future__ import annotations

from aexp.startup import quiet_interrupts

# Before the imports below (flow and signac load for ~0.3 s): a Ctrl-C while they load ends the
# command in one line and exit code 130, as it does once the command runs (aexp/startup.py).
quiet_interrupts(__name__)

from aexp import workflow as wf  # noqa: E402
from aexp.sync import sync_operation, sync_ready  # noqa: E402
from aexp.workflow.command import main, settings_or_exit  # noqa: E402
from aexp.workflow.project import WorkflowProject  # noqa: E402
from experiment import experiment  # noqa: E402

SETTINGS = settings_or_exit(__file__)  # signac.rc, with AEXP_* overrides (docs/settings.md)
STALE_AFTER = SETTINGS.stale_after
STALL_AFTER = SETTINGS.stall_after


class Project(WorkflowProject):
    """The template's project; add operations below the four that ship with it."""

    settings = SETTINGS


# The operations one compute-node allocation runs for a job, in one process (`submit` sends it).
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
def stalled(job):  # alive, but its journal stopped progressing ([workflow] stall_after)
    return wf.stalled_label(job, STALE_AFTER, STALL_AFTER)


@Project.label
def unsynced(job):
    return wf.needs_sync(job)


@Project.label
def corrupt(job):
    return wf.is_corrupt(job)


# -- operations -------------------------------------------------------------------------------
@run_job
@Project.pre(wf.needs_binding)  # in a pass that runs `execute`, that binds the job
@Project.post(wf.is_bound)
@Project.operation
def init_tracker(job):
    """Bind the job to a new run of the backend in signac.rc (no W&B files yet)."""
    wf.init_tracker(job, SETTINGS)


# `directives` are what one SLURM job asks for (templates/script.sh renders them): np CPUs,
# walltime in hours; add "memory" (GB) and "ngpu" here (GPUs need `submit --force`, docs/hpc.md).
@run_job
@Project.pre(lambda job: wf.can_execute(job, STALE_AFTER))
@Project.post(wf.execute_ended)
@Project.operation(directives={"np": 1, "walltime": 1})
def execute(job):
    """Run experiment.py's `experiment` inside the bound run; a preempted attempt resumes."""
    wf.execute(job, experiment, SETTINGS)


@run_job
@Project.pre(wf.needs_finish)
@Project.post(wf.is_finished)
@Project.operation
def finish(job):
    """Record the end of a run whose attempt ended without recording it (a killed process)."""
    wf.finish(job)


@Project.pre(sync_ready)
@Project.post(wf.is_synced)
@Project.operation
def sync_offline(job):
    """Send the finished run to the backends that need a login node: W&B offline, MLflow.
    The pass's first call syncs every eligible job in one go (aexp/sync/operation.py)."""
    sync_operation(job, SETTINGS)


if __name__ == "__main__":
    # Every way this can end is one line and an exit code (docs/workflow.md, "Exit codes").
    main(Project)
