"""The FlowProject that project.py builds on: the workflow's machinery, out of the way of its story.

This is the one module of aexp that imports signac-flow. project.py subclasses `WorkflowProject`
with its settings, labels and operations, and ends with `main(Project)`; everything flow has to
be told besides is here:

    run        the pre-pass checks (backend SDKs, a writable workspace: one line, nothing run),
               the pass summary (aexp.workflow.report), `-p N` that a preemption stops cleanly
    status     each job's state read once for every condition and label (`snapshot`), and the
               scheduler's failures as one line
    submit     refused without a scheduler (or rendered with --pretend), every submission
               checked before the first is sent (`check_submission`), SLURM's log directory
               made, signac.rc's [slurm] section handed to templates/script.sh; on SLURM flow
               chooses and renders, aexp.slurm.submission sends: the canary first
               (`--canary`), the queue limits, sizes from past attempts, the job ids sbatch
               prints, an honest account of what was sent
    main       the door: the project found from project.py's own folder; the command line
               checked before anything runs (aexp.workflow.arguments, with aexp's own options:
               aexp.workflow.options); every way a command can end is one line and an exit
               code (`explain`, aexp.door's table); a job whose state point cannot be read
               offered for repair and left out

Where flow offers no public hook, a private method is overridden here, each with the reason:
signac's listing of job directories, flow's execution of one operation (a pool worker's exit),
flow's choice of what to submit (the checks), its submission of one bundle (the canary needs
sbatch's job id) and its template context. A researcher who adds an operation to project.py
never needs them.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

from flow import FlowProject
from flow.environment import TestEnvironment, get_environment
from flow.errors import SubmitError
from flow.scheduling.fake_scheduler import FakeScheduler
from flow.scheduling.slurm import SlurmScheduler

from aexp import agent, door
from aexp.errors import SubmissionError
from aexp.settings import Settings
from aexp.statepoints import quiet_statepoint_errors, usable_job_dirs
from aexp.workflow import forked
from aexp.workflow.arguments import pooled, selects
from aexp.workflow.conditions import in_run, operation_ran, say, snapshot
from aexp.workflow.preflight import check_backends_installed, check_writable

# The pass summary (and, through it, the attempt machinery) and the walltime check are imported
# where `run` and `submit` need them: `status` and `--help` load neither (docs/benchmarks.md,
# benchmark 2).

# SLURM batch output goes to <project>/logs/slurm-<SLURM job id>.out (unless --job-output).
SLURM_LOG_DIR = "logs"


class WorkflowProject(FlowProject):
    """The template's FlowProject: subclass it, set `settings`, add labels and operations.

    `exit_code` is the last `run`'s: 1 when an experiment failed or a problem needs the user.
    `submit_group` is the group `submit` sends when no operation is named (one SLURM job per
    sweep point runs it in one process: bind, execute and finish with one live tracker run).
    `binding_operation` binds an unbound job in its attempt: a `run` that selects it leaves
    unbound jobs to it (`aexp.workflow.conditions.execute_binds`).
    """

    settings: ClassVar[Settings]
    submit_group: ClassVar[str] = "run_job"
    binding_operation: ClassVar[str] = "execute"
    exit_code = 0
    pass_started = False  # `run` has begun its pass: the command is not to be done again
    canary: int | None = None  # `run --canary N` (set by the command line, aexp.workflow.options)
    lost_operations = 0  # `run -p N`: operations whose worker died (aexp.workflow.workerpool)
    pass_json = False  # `run --json`: the pass summary as one JSON line (docs/json.md)
    _collected: list[tuple[Any, dict[str, Any]]] | None = None  # a submit pass's bundles

    def __init__(self, *args: Any, environment: Any = None, **kwargs: Any) -> None:
        self.compute_environment = environment or get_environment()
        super().__init__(*args, environment=self.compute_environment, **kwargs)
        quiet_statepoint_errors()  # a damaged state point is reported once, by aexp
        self._forked_key = forked.remember(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # `run -p N` pickles the project for every operation, by value (project.py is
        # __main__): ~3 ms per operation in a worker. A forked worker already has it: look it
        # up instead (aexp.workflow.forked). Python's own hook; flow has none for this.
        if forked.fork_reduces():
            return (forked.by_id, (self._forked_key,))
        return super().__reduce_ex__(protocol)

    def _job_dirs(self) -> Iterator[str]:
        # signac lists every directory named like a job id and ends the whole command at the
        # first one without a state point: those, and the jobs `main` found damaged, are
        # reported once, with what to do, and left out. signac (a private method) has no
        # public hook for this.
        return usable_job_dirs(self.workspace, super()._job_dirs(), say)

    # -- run ----------------------------------------------------------------------------------
    def run(
        self, jobs: Any = None, names: Any = None, pretend: bool = False, **kwargs: Any
    ) -> None:
        # Checked once before anything runs (a missing SDK or a read-only workspace would fail
        # every job alike), then summed up in two lines from the jobs' states (docs/workflow.md).
        if pretend:
            return super().run(jobs=jobs, names=names, pretend=pretend, **kwargs)
        from aexp.workflow.report import PassWatch

        check_backends_installed(self.settings.backends)
        check_writable(self.workspace)
        if self.canary:  # `run --canary N`: those first, one at a time; a failure stops here
            # (each canary is a pass of its own, with its own summary)
            from aexp.workflow.canary import run_canary

            if not run_canary(self, jobs, names, self.canary, **kwargs):
                self.exit_code = 1
                return None
        serial = not pooled(kwargs.get("np"), kwargs.get("timeout"))
        run = in_run(
            execute_binds=selects(self.groups, names, self.binding_operation),
            trust_sweeps=serial,
        )
        with forked.signals_stop_pool(not serial), run:
            # Inside the pass: flow's first sweep of conditions takes the facts this look took.
            watch = PassWatch(
                self.workspace,
                self._ids(jobs),  # `-f` reads the state points here, before anything runs
                stale_after=self.settings.stale_after,
                backends=self.settings.backends,
            )
            self.pass_started = True
            super().run(jobs=jobs, names=names, **kwargs)
        self.exit_code = watch.finish(json_line=self.pass_json).exit_code
        if self.lost_operations:
            self.exit_code = max(self.exit_code, 1)
        return None

    def _execute_operation(self, operation: Any, timeout: Any = None, pretend: bool = False) -> Any:
        # In a pool worker of `run -p N`, a preempted attempt's SystemExit would end the worker
        # and lose its task (the pass would wait for it forever): it reaches `run` instead.
        # After it, the conditions look at the jobs' documents again (`operation_ran`).
        # flow (a private method) has no public hook around one operation's execution.
        try:
            return super()._execute_operation(operation, timeout=timeout, pretend=pretend)
        except SystemExit as exc:
            if not forked.in_pool_worker():
                raise
            code = exc.code if isinstance(exc.code, int) else 1
            forked.exit_soon(code)  # as the SystemExit would have, once the result is sent
            raise forked.WorkerExit(code) from None
        finally:
            operation_ran()
            forked.leave_if_orphaned()

    def _run_operations(self, operations: Any, pretend: bool = False, np: Any = None,
                        timeout: Any = None, progress: bool = False) -> None:  # fmt: skip
        # `-p N` and `-t S` on aexp's pool instead of flow's multiprocessing.Pool, which waits
        # forever once one of its workers is killed, and flow's `-t` path, a shell per operation
        # (aexp.workflow.workerpool). flow (a private method) has no hook for its pool; its task
        # serialisation is kept (`_run_operations_in_parallel`).
        if pretend or not pooled(np, timeout):
            return super()._run_operations(operations, pretend, np, timeout, progress)
        from aexp.workflow.workerpool import WorkerPool, cpu_count, say_lost

        operations, timeout = list(operations), None if timeout is None or timeout < 0 else timeout
        pool = WorkerPool(cpu_count() if np is not None and np < 0 else np or 1)
        try:
            with pool:
                try:
                    self._run_operations_in_parallel(pool, operations, progress, timeout)
                except self._PickleError as error:
                    raise RuntimeError(f"Unable to parallelize execution: {error}.") from None
        finally:  # also when the pass ends early: a lost job is named all the same
            lost = [(operations[i].name, operations[i]._jobs, death) for i, death in pool.lost]
            self.lost_operations += say_lost(lost)
        return None

    def _ids(self, jobs: Any) -> list[str] | None:
        """The ids of the jobs `run` was given; None when that is every job."""
        if jobs is None or (not isinstance(jobs, list) and len(jobs) == len(self)):
            return None
        return [job.id for aggregate in jobs for job in aggregate]

    # -- status -------------------------------------------------------------------------------
    def print_status(self, *args: Any, **kwargs: Any) -> Any:
        # Every condition and label of a job reads its state: one read per job per status.
        with snapshot():
            shown = super().print_status(*args, **kwargs)
        self._say_gates(kwargs.get("file"))
        return shown

    def _say_gates(self, file: Any = None) -> None:
        """What the SLURM jobs held behind a canary wait for (aexp.slurm.canary)."""
        scheduler = getattr(self.compute_environment, "scheduler_type", None)
        if scheduler is not None and issubclass(scheduler, SlurmScheduler):
            from aexp.slurm.canary import say_gates

            say_gates(self.workspace, str(Path(self.path, SLURM_LOG_DIR)), self.settings, file)

    def scheduler_jobs(self, scheduler: Any) -> Iterator[Any]:
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

    # -- submit -------------------------------------------------------------------------------
    def submit(
        self,
        *args: Any,
        names: Any = None,
        pretend: bool = False,
        flags: Any = None,
        canary: int | None = None,
        **kwargs: Any,
    ) -> Any:
        # sync_offline needs network and never goes to a compute node: the group goes.
        names = names or [self.submit_group]
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
            kwargs.update(names=names, pretend=True, flags=flags, canary=canary)
            return as_slurm.submit(*args, **kwargs)
        from aexp.agent.history import check_recordable
        from aexp.slurm.sizing import auto_walltime, project_sizes
        from aexp.workflow.walltime import time_flag

        if not pretend:  # a submission is recorded once sent: refused now if it cannot be
            check_recordable(self.path)
        scheduler = self.compute_environment.scheduler_type
        ours = issubclass(scheduler, SlurmScheduler | FakeScheduler)
        if canary and not ours:
            raise SubmissionError(
                f"submit --canary needs SLURM; {scheduler.__name__} is not supported by it "
                "(submit without --canary); nothing was submitted."
            )
        sizes = project_sizes(self.path, self.settings) if ours else None
        # sbatch flags after `--` (e.g. --time=2) override the operations' walltime directives,
        # and [slurm] walltime = auto (when past attempts back it) does too.
        self._flag_walltime = time_flag(flags or []) or auto_walltime(sizes, self.settings)
        # SLURM silently drops a job whose output directory is missing: make it first.
        Path(self.path, SLURM_LOG_DIR).mkdir(exist_ok=True)
        if kwargs.get("job_output"):
            Path(kwargs["job_output"]).parent.mkdir(parents=True, exist_ok=True)
        if not ours or kwargs.get("show_template_help"):
            done = super().submit(*args, names=names, pretend=pretend, flags=flags, **kwargs)
        else:
            done = self._submit_planned(args, names, pretend, flags, canary, sizes, kwargs)
        agent.record_submission(self.path, vars(self).pop("_submission", None), pretend)
        return done

    def _submit_planned(
        self,
        args: Any,
        names: Any,
        pretend: bool,
        flags: Any,
        canary: int | None,
        sizes: Any,
        kwargs: dict[str, Any],
    ) -> None:
        """flow chooses the eligible operations and bundles them (each bundle reaches
        `_submit_operations`, which keeps it); aexp.slurm.submission plans and sends them."""
        from aexp.slurm.submission import Submission

        self._collected = []
        try:
            super().submit(*args, names=names, pretend=pretend, flags=flags, **kwargs)
            collected, self._collected = self._collected, None
        finally:
            self._collected = None
        ops = [op for bundle, _ in collected for op in bundle]
        options = collected[0][1] if collected else {}
        submission = Submission(
            settings=self.settings,
            log_dir=str(Path(self.path, SLURM_LOG_DIR)),
            flags=flags or [],
            canary=canary,
            bundle=kwargs.get("bundle_size") or 1,
            parallel=bool(kwargs.get("parallel")),
            pretend=pretend,
            hold=bool(kwargs.get("hold")),
            after=kwargs.get("after"),
            sizes=sizes,
            env_flags=getattr(self.compute_environment, "submit_flags", None) or (),
        )

        def render(bundle: Any, name: str) -> str:
            return self._generate_submit_script(
                _id=name, operations=bundle, show_template_help=False, **options
            )

        submission.run(
            ops,
            name_of=self._store_bundled,
            render=render,
            jobs_of=lambda op: [job.id for job in op._jobs],
        )

    def _submit_operations(self, operations: Any, _id: Any = None, **kwargs: Any) -> Any:
        # flow submits each bundle here, discarding the job id sbatch prints and rendering its
        # own `--after` as `sbatch -W` (a wait); the canary's dependents need that id. During
        # a SLURM `submit` the bundle is kept (`_submit_planned` sends it); flow (a private
        # method) has no public hook between choosing a submission and sending it.
        if self._collected is None:
            return super()._submit_operations(operations, _id=_id, **kwargs)
        options = {key: kwargs[key] for key in kwargs if key not in ("flags", "show_template_help")}
        options.setdefault("template", "script.sh")
        self._collected.append((list(operations), options))
        return None

    def check_submission(self, operation: Any) -> None:
        """Refuse one submission (SubmissionError: one sentence; nothing is sent) before the
        first of the pass is sent. Here: a walltime that ends before SLURM's warning signal
        leaves no time to work (docs/hpc.md, "The working window"). Extend it in a subclass
        for more checks (call this one too)."""
        from aexp.workflow.walltime import check_working_window

        walltime = operation.directives.get("walltime")
        flagged = getattr(self, "_flag_walltime", None)  # set by `submit`
        seconds = flagged or (walltime.total_seconds() if walltime else None)
        check_working_window(
            str(operation),
            seconds,
            warning_seconds=self.settings.slurm.warning_seconds,
            warning_signal=self.settings.slurm.warning_signal,
        )

    def _get_submission_operations(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        # flow (a private method) has no public hook that sees each submission before the first
        # is sent: each is checked here (`check_submission`), an agent's against [agent]'s budget.
        for operation in (operations := list(super()._get_submission_operations(*args, **kwargs))):
            self.check_submission(operation)
        jobs = [([job.id for job in op._jobs], op.directives) for op in operations]
        self._submission = agent.admit_submission(self.path, self.settings, jobs)
        yield from operations

    def _get_standard_template_context(self) -> dict[str, Any]:
        # templates/script.sh (the batch script, docs/hpc.md) reads signac.rc's [slurm] section
        # as `slurm`; flow builds this context for both `submit` and `script`, and has no
        # public hook to add to it (submit's keyword arguments also reach sbatch's call).
        context = super()._get_standard_template_context()
        context["slurm"] = {
            **asdict(self.settings.slurm),
            "log_dir": str(Path(self.path, SLURM_LOG_DIR)),
        }
        return context


def explain(exc: BaseException, project: WorkflowProject) -> door.Verdict | None:
    """The Verdict (aexp.door: exit code and one line) on an exception that ended a command of
    `project`; None when it is not one the door knows (it propagates, traceback and all: a
    bug). flow's own exceptions are read here, everything else by `aexp.door.verdict`."""
    if isinstance(exc, SubmitError):  # sbatch refused (controller down, bad partition, account)
        reason = str(exc).strip().splitlines()[-1].removeprefix("sbatch: error: ")
        return door.Verdict(
            door.FAILED, f"sbatch refused a submission ({reason}); earlier ones stay queued."
        )
    if isinstance(exc, forked.WorkerExit):  # run -p N: a preempted attempt (said in its line)
        return door.Verdict(exc.code, None)
    if isinstance(exc, multiprocessing.TimeoutError):  # run -t S (flow said so)
        return door.Verdict(
            door.FAILED,
            "the pass stopped there; an attempt cut short is recorded preempted, "
            "and the next run resumes it (a larger -t/--timeout lets operations run longer).",
        )
    return door.verdict(exc, project.workspace)


__all__ = ["SLURM_LOG_DIR", "WorkflowProject", "explain"]
