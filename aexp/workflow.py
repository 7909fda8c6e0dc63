"""What project.py's operations, conditions and labels call (plain functions of a job).

Conditions read the job document through `read_doc`, which parses it once per change, so a
`status` call costs one parse per job however many conditions and labels look at it. A job whose
binding was corrupted by hand is never eligible for anything; it shows the `corrupt` label and
one warning naming the job, and every other job carries on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from aexp.binding import (
    BOUND,
    COMPLETED,
    FAILED,
    FINISHED,
    PREEMPTED,
    RUNNING,
    bind_tracker,
    get_binding,
)
from aexp.errors import AexpError, BindingError
from aexp.jobdoc import read_doc
from aexp.lifecycle import Preempted, finish_run, is_stale, run_lifecycle
from aexp.settings import Settings
from aexp.trackers import TrackerAdapter, get_adapter

_warned: set[str] = set()


def adapter_from_settings(settings: Settings) -> TrackerAdapter:
    """The adapter `signac.rc` asks for, constructed with its options."""
    options = {"entity": settings.entity} if settings.backend == "wandb" else {}
    return get_adapter(settings.backend, **options)


def binding_of(job: Any) -> dict[str, Any] | None:
    """The job's binding, or None if unbound or corrupted (warned about once per process)."""
    try:
        return get_binding(job)
    except BindingError as exc:
        if job.id not in _warned:
            _warned.add(job.id)
            print(f"warning: {exc}", file=sys.stderr)
        return None


def _state(job: Any) -> str | None:
    binding = binding_of(job)
    return binding["state"] if binding else None


# -- conditions -------------------------------------------------------------------------------
def is_corrupt(job: Any) -> bool:
    """The job's document or binding cannot be read."""
    try:
        get_binding(job)
    except BindingError:
        return True
    return False


def is_unbound(job: Any) -> bool:
    """Not bound yet, and nothing corrupted in the way of binding it."""
    try:
        return get_binding(job) is None
    except BindingError:
        binding_of(job)  # warn once
        return False


def is_bound(job: Any) -> bool:
    return binding_of(job) is not None


def can_execute(job: Any, stale_after: float) -> bool:
    """Bound and not ended: never run, preempted, or running with a stale heartbeat."""
    state = _state(job)
    if state in (BOUND, PREEMPTED):
        return True
    return state == RUNNING and is_stale(read_doc(job), stale_after)


def execute_ended(job: Any) -> bool:
    """The last attempt completed or failed (a preempted one has not ended)."""
    return _state(job) in (COMPLETED, FAILED, FINISHED)


def is_finished(job: Any) -> bool:
    """`finish` has closed the run (successfully or as failed)."""
    binding = binding_of(job)
    return bool(binding and binding.get("finished_at"))


def is_synced(job: Any) -> bool:
    binding = binding_of(job)
    return bool(binding and binding.get("synced_at"))


def needs_sync(job: Any) -> bool:
    """A finished W&B offline run not uploaded yet."""
    binding = binding_of(job)
    return bool(
        binding
        and binding["backend"] == "wandb"
        and binding.get("offline")
        and binding.get("finished_at")
        and not binding.get("synced_at")
    )


# -- labels -----------------------------------------------------------------------------------
def backend_label(job: Any) -> str | None:
    binding = binding_of(job)
    if not binding:
        return None
    return f"{binding['backend']}-offline" if binding.get("offline") else binding["backend"]


def state_label(job: Any) -> str | None:
    binding = binding_of(job)
    if not binding:
        return None
    return "synced" if binding.get("synced_at") else binding["state"]


def stale_label(job: Any, stale_after: float) -> bool:
    return _state(job) == RUNNING and is_stale(read_doc(job), stale_after)


# -- operations -------------------------------------------------------------------------------
def init_tracker(job: Any, settings: Settings) -> None:
    """Bind the job to a run of the backend `signac.rc` names (idempotent)."""
    bind_tracker(
        job,
        adapter_from_settings(settings),
        project=settings.project,
        offline=settings.offline,
        tags=settings.tags,
    )


def execute(job: Any, experiment: Callable[[Any, Any], Any], settings: Settings) -> None:
    """Run one attempt of `experiment(job, tracker)` inside the job's run.

    A failure is recorded (state failed, traceback in the job's error.log) and reported in one
    line, not raised: flow goes on with the other jobs and `finish` closes the run as failed.
    A preemption exits the process with 128 + signal after recording it, so SLURM requeues.
    """
    try:
        with run_lifecycle(
            job,
            close=False,
            heartbeat_interval=settings.heartbeat_interval,
            stale_after=settings.stale_after,
            artifacts=settings.artifacts,
        ) as tracker:
            experiment(job, tracker)
    except (Preempted, KeyboardInterrupt):
        raise
    except AexpError as exc:  # already running elsewhere, backend refused: nothing to retry now
        print(f"error: {exc}", file=sys.stderr)
    except Exception as exc:
        print(
            f"job {job.id} failed: {type(exc).__name__}: {exc} (traceback in "
            f"{job.fn('error.log')}; re-arm with: aexp rearm {job.id})",
            file=sys.stderr,
        )


def finish(job: Any) -> None:
    """Close the job's run with its exit code and record the final state (idempotent)."""
    finish_run(job)
