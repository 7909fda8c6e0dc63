"""What project.py's operations, conditions and labels call (plain functions of a job).

Conditions and labels see a job through a small tuple of facts taken from its document (bound?
state, backend, offline, finished, synced, or the reason it cannot be read; and the document
itself while the job is running, for `is_stale`). Outside
`snapshot()` the facts are re-derived only when the document changed (`read_doc` is cached per
file change); inside `snapshot()`, which project.py wraps around `status`, each job document is
read exactly once for all of its conditions and labels and the parsed document is not kept, so
a status over 100,000 jobs holds a few hundred bytes per job, not the documents. A job whose
binding was corrupted by hand is never eligible for anything; it shows the `corrupt` label and
one warning naming the job, and every other job carries on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
from aexp.jobdoc import peek_doc, read_doc
from aexp.lifecycle import ERROR_LOG, Preempted, finish_run, is_stale, run_lifecycle
from aexp.settings import Settings
from aexp.trackers import TrackerAdapter, get_adapter

_warned: set[str] = set()

# What the conditions and labels know about a job, as a plain tuple (of atomic values but for
# the running doc: the garbage collector stops tracking those, which matters when a status holds
# 100,000 of them):
#   (error, bound, backend, offline, state, finished, synced, running_doc)
# error is the BindingError message when the document or binding cannot be read, else None;
# running_doc is the document of a job whose run is running (what `is_stale` judges), else None.
_ERROR, _BOUND, _BACKEND, _OFFLINE, _STATE, _FINISHED, _SYNCED, _RUNNING_DOC = range(8)
Facts = tuple[Any, ...]
# Outside a snapshot: the facts of each job by path, and the parsed document they came from
# (`read_doc` returns the same dict until the file changes). Two dicts, not one of pairs.
_facts_docs: dict[str, dict[str, Any]] = {}
_facts: dict[str, Facts] = {}
# Inside a snapshot: {path: facts} of the jobs seen so far in it.
_snapshot: ContextVar[dict[str, Facts] | None] = ContextVar("aexp_status_snapshot", default=None)


def adapter_from_settings(settings: Settings) -> TrackerAdapter:
    """The adapter `signac.rc` asks for, constructed with its options."""
    options = {"entity": settings.entity} if settings.backend == "wandb" else {}
    return get_adapter(settings.backend, **options)


@contextmanager
def snapshot() -> Iterator[None]:
    """Within this block, conditions and labels read each job document once.

    For read-only passes over many jobs (project.py wraps `status` in it): every condition and
    label of a job sees the document as the first of them read it, at the cost of one stat and
    one parse per job, and the parsed documents are not kept. Not for passes that change jobs
    (`run`): their own updates would not be seen. Applies to the current thread (context);
    nested blocks share the outer snapshot.
    """
    if _snapshot.get() is not None:
        yield
        return
    token = _snapshot.set({})
    try:
        yield
    finally:
        _snapshot.reset(token)


def _unreadable(exc: BindingError) -> Facts:
    return (str(exc), False, None, False, None, False, False, None)


def _derive(job: Any, doc: dict[str, Any] | None) -> Facts:
    try:
        if doc is None:
            doc = peek_doc(job)  # raises BindingError for a document that is not JSON
        binding = get_binding(job, doc)
    except BindingError as exc:
        return _unreadable(exc)
    if binding is None:
        return (None, False, None, False, None, False, False, None)
    return (
        None,
        True,
        sys.intern(binding["backend"]),
        bool(binding.get("offline")),
        sys.intern(binding["state"]),
        bool(binding.get("finished_at")),
        bool(binding.get("synced_at")),
        doc if binding["state"] == RUNNING else None,
    )


def _facts_of(job: Any) -> Facts:
    path = job.path
    seen = _snapshot.get()
    if seen is not None:
        facts = seen.get(path)
        if facts is None:
            facts = seen[path] = _derive(job, None)
        return facts
    try:
        doc = read_doc(job)
    except BindingError as exc:
        return _unreadable(exc)
    if _facts_docs.get(path) is doc:
        return _facts[path]
    facts = _derive(job, doc)
    _facts_docs[path] = doc
    _facts[path] = facts
    return facts


def _warn(job: Any, message: str) -> None:
    if job.id not in _warned:
        _warned.add(job.id)
        print(f"warning: {message}", file=sys.stderr)


def _usable(job: Any) -> Facts | None:
    """The facts of a bound job; None if unbound, or corrupted (warned about once per process)."""
    facts = _facts_of(job)
    if facts[_ERROR] is not None:
        _warn(job, facts[_ERROR])
        return None
    return facts if facts[_BOUND] else None


def _state(job: Any) -> str | None:
    facts = _usable(job)
    return facts[_STATE] if facts else None


def _stale(facts: Facts, stale_after: float) -> bool:
    return is_stale(facts[_RUNNING_DOC], stale_after)


# -- conditions -------------------------------------------------------------------------------
def is_corrupt(job: Any) -> bool:
    """The job's document or binding cannot be read."""
    return _facts_of(job)[_ERROR] is not None


def is_unbound(job: Any) -> bool:
    """Not bound yet, and nothing corrupted in the way of binding it."""
    facts = _facts_of(job)
    if facts[_ERROR] is not None:
        _warn(job, facts[_ERROR])
        return False
    return not facts[_BOUND]


def is_bound(job: Any) -> bool:
    return _usable(job) is not None


def can_execute(job: Any, stale_after: float) -> bool:
    """Bound and not ended: never run, preempted, or running with a stale heartbeat."""
    facts = _usable(job)
    if facts is None:
        return False
    state = facts[_STATE]
    if state in (BOUND, PREEMPTED):
        return True
    return state == RUNNING and _stale(facts, stale_after)


def execute_ended(job: Any) -> bool:
    """The last attempt completed or failed (a preempted one has not ended)."""
    return _state(job) in (COMPLETED, FAILED, FINISHED)


def is_finished(job: Any) -> bool:
    """`finish` has closed the run (successfully or as failed)."""
    facts = _usable(job)
    return bool(facts and facts[_FINISHED])


def is_synced(job: Any) -> bool:
    facts = _usable(job)
    return bool(facts and facts[_SYNCED])


def needs_sync(job: Any) -> bool:
    """A finished W&B offline run not uploaded yet."""
    facts = _usable(job)
    return bool(
        facts
        and facts[_BACKEND] == "wandb"
        and facts[_OFFLINE]
        and facts[_FINISHED]
        and not facts[_SYNCED]
    )


# -- labels -----------------------------------------------------------------------------------
def backend_label(job: Any) -> str | None:
    facts = _usable(job)
    if not facts:
        return None
    return f"{facts[_BACKEND]}-offline" if facts[_OFFLINE] else facts[_BACKEND]


def state_label(job: Any) -> str | None:
    facts = _usable(job)
    if not facts:
        return None
    return "synced" if facts[_SYNCED] else facts[_STATE]


def stale_label(job: Any, stale_after: float) -> bool:
    facts = _usable(job)
    return bool(facts and facts[_STATE] == RUNNING and _stale(facts, stale_after))


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
            f"{job.fn(ERROR_LOG)}; re-arm with: aexp rearm {job.id})",
            file=sys.stderr,
        )


def finish(job: Any) -> None:
    """Close the job's run with its exit code and record the final state (idempotent)."""
    finish_run(job)
