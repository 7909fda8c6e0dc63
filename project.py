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
from flow.environment import TestEnvironment, get_environment
from flow.errors import SubmitError
from signac.errors import JobsCorruptedError

from aexp import AexpError, TrackerInitError, load_settings
from aexp import workflow as wf
from aexp.errors import SubmissionError
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

    exit_code = 0  # of the last `run`: 1 when an experiment failed or a problem needs you
    pass_json = False  # `run --json`: the pass summary as one JSON line (docs/json.md)

    def __init__(self, *args, environment=None, **kwargs):
        self.compute_environment = environment or get_environment()
        super().__init__(*args, environment=self.compute_environment, **kwargs)
        wf.quiet_statepoint_errors()  # a damaged state point is reported once, by aexp
        self._forked_key = wf.forked.remember(self)

    def __reduce_ex__(self, protocol):
        # `run -p N` pickles the project for every operation, by value (this file is __main__):
        # ~3 ms per operation in a worker. A forked worker already has it: look it up instead.
        if wf.forked.fork_reduces():
            return (wf.forked.by_id, (self._forked_key,))
        return super().__reduce_ex__(protocol)

    def _job_dirs(self):
        # signac lists every directory named like a job id and ends the whole command at the
        # first one without a state point (older aexp left such directories behind): those are
        # reported once, with what to do, and left out. (signac has no public hook for this.)
        return wf.usable_job_dirs(self.workspace, super()._job_dirs())

    def run(self, jobs=None, names=None, pretend=False, **kwargs):
        # Checked once before anything runs (a missing SDK or a read-only workspace would fail
        # every job alike), then summed up in two lines from the job documents (docs/workflow.md).
        if pretend:
            return super().run(jobs=jobs, names=names, pretend=pretend, **kwargs)
        wf.check_backends_installed(SETTINGS.backends)
        wf.check_writable(self.workspace)
        watch = wf.PassWatch(self.workspace, self._ids(jobs), stale_after=STALE_AFTER)
        with wf.forked.signals_stop_pool(kwargs.get("np") not in (None, 1)):
            super().run(jobs=jobs, names=names, **kwargs)
        self.exit_code = watch.finish(json_line=self.pass_json).exit_code
        return None

    def _execute_operation(self, operation, timeout=None, pretend=False):
        # In a pool worker of `run -p N`, a preempted attempt's SystemExit would end the worker
        # and lose its task (the pass would wait for it forever): it reaches `run` instead.
        try:
            return super()._execute_operation(operation, timeout=timeout, pretend=pretend)
        except SystemExit as exc:
            if not wf.forked.in_pool_worker():
                raise
            code = exc.code if isinstance(exc.code, int) else 1
            wf.forked.exit_soon(code)  # as the SystemExit would have, once the result is sent
            raise wf.forked.WorkerExit(code) from None

    def _ids(self, jobs):
        """The ids of the jobs `run` was given; None when that is every job."""
        if jobs is None or (not isinstance(jobs, list) and len(jobs) == len(self)):
            return None
        return [job.id for aggregate in jobs for job in aggregate]

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

    def submit(self, *args, names=None, pretend=False, flags=None, **kwargs):
        # One SLURM job per sweep point runs bind, execute and finish in one process (one live
        # tracker run); sync_offline needs network and never goes to a compute node.
        names = names or ["run_job"]
        if getattr(self.compute_environment, "scheduler_type", None) is None:
            environment = self.compute_environment.__name__
            if not pretend:
                raise SubmissionError(
                    f"no scheduler here (flow detected {environment}): submit from a SLURM "
                    "login node, run here with: python project.py run, or see the batch script "
                    "with: python project.py submit --pretend"
                )
            print(
                f"note: no scheduler here (flow detected {environment}); this is the script "
                "SLURM would get, rendered from flow's SLURM template.",
                file=sys.stderr,
            )
            as_slurm = type(self)(path=self.path, environment=TestEnvironment)
            return as_slurm.submit(*args, names=names, pretend=True, flags=flags, **kwargs)
        # sbatch flags after `--` (e.g. --time=2) override the operations' walltime directives.
        self._flag_walltime = wf.time_flag(flags or [])
        # SLURM silently drops a job whose output directory is missing: make it first.
        Path(self.path, SLURM_LOG_DIR).mkdir(exist_ok=True)
        if kwargs.get("job_output"):
            Path(kwargs["job_output"]).parent.mkdir(parents=True, exist_ok=True)
        self._pretend, self._submission = pretend, None
        done = super().submit(*args, names=names, pretend=pretend, flags=flags, **kwargs)
        if self._submission is not None:  # logged with its actor and cost (docs/agents.md)
            wf.record_submission(self.path, *self._submission)
        return done

    def _get_submission_operations(self, *args, **kwargs):
        # Every submission is checked before the first is sent: a walltime that ends before
        # the warning signal leaves no time to work (docs/hpc.md, "The working window"), and
        # an agent stays within [agent]'s budget (docs/agents.md).
        operations = list(super()._get_submission_operations(*args, **kwargs))
        for operation in operations:
            walltime = operation.directives.get("walltime")
            seconds = getattr(self, "_flag_walltime", None) or (
                walltime.total_seconds() if walltime else None
            )
            wf.check_working_window(
                str(operation),
                seconds,
                warning_seconds=SETTINGS.slurm.warning_seconds,
                warning_signal=SETTINGS.slurm.warning_signal,
            )
        if not getattr(self, "_pretend", True):
            jobs = [([job.id for job in op._jobs], op.directives) for op in operations]
            actor, cost, ids = wf.check_submission(self.path, SETTINGS, jobs)
            self._submission = (actor, ids, cost)
        yield from operations

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
    # Every way this can end is one line and an exit code (docs/workflow.md, "Exit codes").
    project = Project()
    project.pass_json = wf.take_json_flag(sys.argv)
    try:
        project.main()
    except TrackerInitError as exc:  # a backend's SDK is not installed: nothing ran
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except AexpError as exc:  # the workspace cannot be written, a submission cannot work
        sys.exit(f"error: {exc}")
    except SubmitError as exc:  # sbatch refused (controller down, bad partition or account)
        reason = str(exc).strip().splitlines()[-1].removeprefix("sbatch: error: ")
        sys.exit(f"error: sbatch refused a submission ({reason}); earlier ones stay queued.")
    except JobsCorruptedError as exc:  # `-f` reads state points; a damaged one stops signac
        dirs = " ".join(str(Path(project.workspace, job_id)) for job_id in exc.job_ids)
        sys.exit(f"error: the state point of {dirs} cannot be read; remove it with rm -r {dirs} "
                 "(or repair its signac_statepoint.json), then run again.")  # fmt: skip
    except wf.forked.WorkerExit as exc:  # run -p N: a preempted attempt (said in its line)
        sys.exit(exc.code)
    except KeyboardInterrupt:  # Ctrl-C between operations (during one, it is a preemption)
        print("interrupted (Ctrl-C); run again to go on.", file=sys.stderr)
        sys.exit(130)
    sys.exit(project.exit_code)
