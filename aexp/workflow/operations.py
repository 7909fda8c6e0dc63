"""What project.py's operations do, each contained to its job.

flow stops a whole `run` at the first operation that raises, so a bad job would hold up every
other job. Every operation here therefore turns a failure into one line on stderr (naming the
job and what to do), records it in the job where it belongs (an experiment's traceback goes to
the job's error.log), and returns: the pass goes on with every other job. So does an attempt
its own stall watch preempted (`Preempted.own`, aexp.stallwatch): recorded preempted, it resumes
at the next run. Only a preemption from outside (SLURM's warning signal, scancel, Ctrl-C) stops
the process, after recording it, so that SLURM requeues the job or the user gets the prompt back.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aexp.agent.actor import workflow_actor
from aexp.attempt import AttemptEnded, NothingToRun
from aexp.binding import adapters_of, bind_tracker, new_binding
from aexp.door import STORAGE_ERRNOS, storage_problem
from aexp.errors import AexpError, JobBusyError, WorkspaceError
from aexp.jobdoc import now_iso, read_doc
from aexp.jobs import project_root_of
from aexp.lifecycle import finish_run, run_lifecycle
from aexp.outcome import ERROR_LOG
from aexp.settings import Settings
from aexp.spec import run_spec
from aexp.stallwatch import StallWatch
from aexp.tracker import Preempted
from aexp.trackers import ADAPTERS, TrackerAdapter, get_adapter
from aexp.workflow.conditions import is_unbound
from aexp.workflow.preflight import check_writable

F = TypeVar("F", bound=Callable[..., Any])


def adapters_from_settings(settings: Settings) -> list[TrackerAdapter]:
    """The adapters `signac.rc` asks for, in its order, each made as the settings configure it
    (`TrackerAdapter.from_settings`: W&B's entity, MLflow's tracking URI)."""
    root = settings.path.parent if settings.path is not None else None
    adapters = []
    for name in settings.backends:
        if name not in ADAPTERS:
            get_adapter(name)  # raises the registry's own error, listing the known backends
        adapters.append(ADAPTERS[name].from_settings(settings, root))
    return adapters


def adapter_from_settings(settings: Settings) -> TrackerAdapter:
    """The primary adapter `signac.rc` asks for."""
    return adapters_from_settings(settings)[0]


# A file system that is full, over quota or read-only (STORAGE_ERRNOS) fails every job the same
# way: it is one problem, said once per process (the pass summary counts what was left undone).
_storage_said: set[int] = set()
# ... and once it was seen, no further attempt of the pass starts an experiment that could not
# write (an attempt's start writes nothing to the job's document: it would run until its first
# checkpoint), unless the file system takes a write again (`_still_refused`).
_storage_seen: set[int] = set()


# Operations of this process that failed (an experiment, or an operation's own error): `exec`,
# which has no pass summary, exits 1 after one (aexp.workflow.command.main).
_failures: list[str] = []


def failed_here() -> bool:
    """True once an operation run in this process has failed (said in its line)."""
    return bool(_failures)


def storage_said() -> bool:
    """True once this process has said that the file system refuses writes."""
    return bool(_storage_said)


def _still_refused(job: Any) -> bool:
    """After a write refused by the file system in this process: whether the workspace still
    refuses one (a small probe file, written and removed)."""
    if not _storage_seen:
        return False
    try:
        check_writable(os.path.dirname(job.path))
    except WorkspaceError:
        return True
    _storage_seen.clear()
    return False


def _in_pool_worker() -> bool:
    # flow's `run -p N` runs operations in multiprocessing workers: there the process that
    # started the pass says a storage problem once, after it (aexp.workflow.report).
    mp = sys.modules.get("multiprocessing")
    return mp is not None and mp.parent_process() is not None


def _fail(job: Any, message: str) -> None:
    _failures.append(job.id)
    _say(job, message)


def _say(job: Any, message: str) -> None:
    # One line naming the job once: aexp's own sentences often start with the job already.
    text = " ".join(message.split()).removeprefix(f"job {job.id}: ")
    if text.startswith(f"job {job.id}'s "):
        text = "its " + text.removeprefix(f"job {job.id}'s ")
    print(f"job {job.id}: {text}", file=sys.stderr)


def contained(operation: F) -> F:
    """Run `operation(job, ...)` so that its failure stays with its job (module docstring).

    Returns what the operation returns, or None after a failure (reported in one line).
    """

    @functools.wraps(operation)
    def run(job: Any, *args: Any, **kwargs: Any) -> Any:
        name = operation.__name__
        try:
            return operation(job, *args, **kwargs)
        except (Preempted, KeyboardInterrupt):
            raise
        except (JobBusyError, NothingToRun):
            # Another process works on the job, or finished it after this pass chose it: its
            # state was checked again under the job's claim, and there is nothing to do here.
            pass
        except AexpError as exc:
            text = str(exc).removeprefix(f"job {job.id}: ")  # said once: _say names the job
            _fail(job, f"{name}: {text}")  # e.g. "job 3f2a...: init_tracker: its state point ..."
        except OSError as exc:
            if exc.errno in STORAGE_ERRNOS:  # the whole file system: one line per process
                _failures.append(job.id)
                _storage_seen.add(exc.errno)
                if exc.errno not in _storage_said and not _in_pool_worker():
                    _storage_said.add(exc.errno)
                    print(
                        f"error: {storage_problem(exc, os.path.dirname(job.path))}",
                        file=sys.stderr,
                    )
            else:  # a file of this job that cannot be written or vanished
                where = f" ({exc.filename})" if exc.filename else ""
                _fail(job, f"{name} could not write{where}: {exc.strerror or exc}.")
        except (Exception, SystemExit) as exc:  # a bug: keep the traceback, report one line
            log = Path(job.path, ERROR_LOG)
            try:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(f"--- {now_iso()} {name}\n{traceback.format_exc()}\n")
                detail = f"traceback in {log}"
            except OSError:
                detail = "traceback not written: the workspace is not writable"
            _fail(job, f"{name} failed: {type(exc).__name__}: {exc} ({detail}).")
        return None

    return run  # type: ignore[return-value]


@contained
def init_tracker(job: Any, settings: Settings) -> None:
    """Bind the job to a run of the backends `signac.rc` names (idempotent). In a pass that
    runs `execute` too, `execute` binds the job itself (`needs_binding`)."""
    bind_tracker(
        job,
        adapters_from_settings(settings),
        project=settings.project,
        offline=settings.offline,
        tags=settings.tags,
        actor=workflow_actor(project_root_of(job)),
    )


@contained
def execute(job: Any, experiment: Callable[[Any, Any], Any], settings: Settings) -> str:
    """Run one attempt of `experiment(job, tracker)` inside the job's run; returns its outcome
    ("finished", "failed", "preempted", or "skipped").

    A failed experiment is recorded (state failed, traceback in the job's error.log), reported in
    one line and not raised: flow goes on with the other jobs. A preemption is recorded, reported
    in one line, and ends the process with 128 + signal (SLURM requeues; Ctrl-C stops `run`),
    unless the attempt's own stall watch sent the signal (`Preempted.own`): then it returns
    "preempted" and the pass goes on.
    """
    if _still_refused(job):  # said once already; the job stays eligible for the next pass
        return "skipped"
    # The run's spec, once for the whole attempt, and before the attempt takes the job's claim:
    # a job whose state point is damaged is left untouched, as `init_tracker` would leave it.
    # Who launches the attempt (recorded with its start), and names the run it binds.
    doc = read_doc(job)  # one look at the document for the spec and `is_unbound`
    actor = workflow_actor(project_root_of(job))
    binds = bool(settings.backends) and is_unbound(job, doc)
    spec = run_spec(job, settings.group_by, actor=actor if binds else None, doc=doc)
    binder = None
    if settings.backends:
        # A job this pass binds here gets its binding made now too, for the same reason (a
        # backend refusing the run). Used only if the job is still unbound under the claim.
        prepared = _new_binding(job, settings, spec, actor) if binds else None

        def binder(spec: Mapping[str, Any]) -> dict[str, Any]:
            if prepared is not None:
                return prepared
            return _new_binding(job, settings, spec, actor)

    tracker = None
    try:
        with run_lifecycle(
            job,
            heartbeat_interval=settings.heartbeat_interval,
            stale_after=settings.stale_after,
            artifacts=settings.artifacts,
            bind=binder,
            spec=spec,
            stall_watch=_stall_watch(job, settings),
            actor=actor,
        ) as tracker:
            experiment(job, tracker)
    except AttemptEnded as exc:
        _say(job, str(exc))
        return "skipped"
    except (Preempted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Preempted) else signal.SIGINT
        own = isinstance(exc, Preempted) and exc.own
        how = (
            "interrupted (Ctrl-C)"
            if signum == signal.SIGINT
            else f"preempted by {signal.Signals(signum).name}{' as stalled' if own else ''}"
        )
        if tracker is None:  # before the experiment started
            _say(job, f"{how} before the attempt started; the next run starts it.")
        else:
            _say(
                job,
                f"{how} at step {tracker.step}; recorded as preempted, and the next run resumes "
                "it from its last checkpoint.",
            )
        if own:  # its stall alone: the pass goes on
            return "preempted"
        # Said: the process ends with 128 + signal and nothing more (no KeyboardInterrupt
        # traceback, no second line from project.py).
        raise exc if isinstance(exc, Preempted) else Preempted(signum) from None
    except AexpError:
        raise  # contained() says it in one line
    except OSError as exc:
        if tracker is None or exc.errno in STORAGE_ERRNOS:
            raise  # the attempt's own bookkeeping, or a full disk: contained() says it
        return _failed(job, exc)  # the experiment's own file trouble: a failed attempt
    except Exception as exc:
        return _failed(job, exc)
    return "finished"


def _stall_watch(job: Any, settings: Settings) -> StallWatch | None:
    """The attempt's stall watch when `[workflow] on_stall = preempt` (aexp.stallwatch)."""
    if settings.on_stall != "preempt":
        return None
    return StallWatch(job.id, settings.stall_after, settings.slurm.warning_signal)


def _new_binding(
    job: Any, settings: Settings, spec: Mapping[str, Any], actor: Mapping[str, Any]
) -> dict[str, Any]:
    return new_binding(
        job,
        adapters_of(adapters_from_settings(settings)),
        project=settings.project,
        offline=settings.offline,
        tags=settings.tags,
        notes=None,
        actor=actor,
        spec=spec,
    )


def _failed(job: Any, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    _fail(
        job,
        f"failed: {type(exc).__name__}: {first} (traceback in {job.fn(ERROR_LOG)}; "
        f"re-arm with: aexp rearm {job.id})",
    )
    return "failed"


@contained
def finish(job: Any) -> None:
    """Record the end of a run whose last attempt ended without recording it (idempotent)."""
    finish_run(job)


__all__ = [
    "adapter_from_settings",
    "adapters_from_settings",
    "contained",
    "execute",
    "finish",
    "init_tracker",
]
