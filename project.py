"""The workflow: every job is bound to a tracker run, executed inside it, finished, then synced.

    python project.py run          run every eligible operation here
    python project.py submit       send them to SLURM (compute nodes log offline)
    python project.py status -d    where every job and its run stand

Each job moves   init_tracker -> execute -> finish -> sync_offline   and every step is keyed on
`job.doc["tracker"]` (docs/job-document.md), so re-running after a crash converges. The
experiment itself lives in experiment.py; settings in signac.rc; the machinery in aexp/.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from flow import FlowProject
from flow.errors import SubmitError

from aexp import AexpError, load_settings
from aexp import workflow as wf
from aexp.sync import sync_operation, sync_ready
from experiment import experiment

try:
    SETTINGS = load_settings(Path(__file__).parent)
except AexpError as exc:
    sys.exit(f"error: {exc}")
STALE_AFTER = SETTINGS.stale_after
# SLURM batch output goes to logs/slurm-<SLURM job id>.out (unless `submit --job-output`).
SLURM_LOG_DIR = "logs"


class Project(FlowProject):
    """The template's project; add operations below the four that ship with it."""

    def print_status(self, *args, **kwargs):
        # Every condition and label of a job reads its document: one read per job per status.
        with wf.snapshot():
            return super().print_status(*args, **kwargs)

    def scheduler_jobs(self, scheduler):
        # With SLURM installed but its controller unreachable, squeue fails and flow ends
        # `status` (and `submit`) in a traceback. Jobs' own states live in their documents:
        # show those, and say once that queue states are missing.
        try:
            yield from super().scheduler_jobs(scheduler)
        except subprocess.CalledProcessError as exc:
            print(
                f"warning: {exc.cmd[0]} exited with {exc.returncode}: the scheduler did not "
                "answer, so queue states are not shown.",
                file=sys.stderr,
            )

    def submit(self, *args, names=None, **kwargs):
        # One SLURM job per sweep point runs bind, execute and finish in one process (one live
        # tracker run); sync_offline needs network and never goes to a compute node.
        # SLURM silently drops a job whose output directory is missing: make it first.
        Path(self.path, SLURM_LOG_DIR).mkdir(exist_ok=True)
        if kwargs.get("job_output"):
            Path(kwargs["job_output"]).parent.mkdir(parents=True, exist_ok=True)
        return super().submit(*args, names=names or ["run_job"], **kwargs)

    def _get_standard_template_context(self):
        # templates/script.sh (the batch script, docs/hpc.md) reads signac.rc's [slurm] section
        # as `slurm`; flow builds this context for both `submit` and `script`.
        context = super()._get_standard_template_context()
        context["slurm"] = {
            **asdict(SETTINGS.slurm),
            "log_dir": str(Path(self.path, SLURM_LOG_DIR)),
        }
        return context


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
    try:
        Project().main()
    except SubmitError as exc:  # sbatch refused (controller down, bad partition or account)
        reason = str(exc).strip().splitlines()[-1].removeprefix("sbatch: error: ")
        sys.exit(f"error: sbatch refused a submission ({reason}); earlier ones stay queued.")
