"""The workflow's conditions and labels: plain functions of a job that read its state.

Conditions and labels see a job through a small tuple of facts taken from its state
(`aexp.state.job_state`: bound? state, backends, offline, finished, synced, needs a sync, or the
reason it cannot be read; and the running attempt's mark, whose staleness is judged at each
question). Outside `snapshot()` the facts are re-derived only when the document changed
(`read_doc` is cached per file change); inside `snapshot()`, which the workflow's project wraps
around `status`, each job's state is read exactly once for all of its conditions and labels and
the parsed document is not kept, so a status over 100,000 jobs holds a few hundred bytes per
job, not the documents. A job whose document was damaged (aexp/schema.py) is never eligible for
anything; it shows the `corrupt` label and one warning naming the job, and every other job
carries on.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

from aexp.binding import backend_parts
from aexp.errors import BindingError
from aexp.jobdoc import read_doc
from aexp.schema import BOUND, COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING
from aexp.state import CORRUPT, UNBOUND, Mark, is_stale, is_stalled, job_state
from aexp.sync.rules import needs_sync as _sync_rule  # aexp.sync is lazy: the rules alone
from aexp.trackers import ADAPTERS

_warned: set[str] = set()


class Facts(NamedTuple):
    """What the conditions, the labels and the pass summary know about a job, taken from its
    state (`job_state`) once per version of its document. A tuple of atomic values but for the
    mark: the garbage collector stops tracking those, which matters when a status holds 100,000
    of them. `error`: why the document or binding cannot be read (None: it can). `mark`: the
    running attempt's (what `is_stale` judges), else None. `attempts`: the attempts the job's
    state knows of (an attempt its document has not recorded yet included). `last_pass`: the
    pass of `run` that started the last attempt (interned: one string per pass)."""

    error: str | None
    bound: bool
    backend: str | None
    state: str | None
    finished_at: str | None
    synced: bool
    needs_sync: bool
    mark: Mark | None
    attempts: int
    last_pass: str | None = None


# The conditions' hot path reads them by index.
_ERROR, _BOUND, _BACKEND, _STATE, _FINISHED, _SYNCED, _NEEDS_SYNC, _MARK, _ATTEMPTS = range(9)
_UNBOUND = Facts(None, False, None, None, None, False, False, None, 0)
# Outside a snapshot: the facts of each job by path, and the parsed document they came from
# (`read_doc` returns the same dict until the file changes). Two dicts, not one of pairs.
_facts_docs: dict[str, dict[str, Any]] = {}
_facts: dict[str, Facts] = {}
# Inside a snapshot: {path: facts} of the jobs seen so far in it.
_snapshot: ContextVar[dict[str, Facts] | None] = ContextVar("aexp_status_snapshot", default=None)
_labels: dict[tuple[Any, ...], str] = {}
# Whether the `run` under way runs `execute`, which binds an unbound job in its attempt: then
# `init_tracker` leaves unbound jobs to it (`in_run`).
_execute_binds: ContextVar[bool] = ContextVar("aexp_execute_binds", default=False)
# Within one sweep of flow over the jobs (no operation of this process ran since), each job's
# document is looked at (a stat) once, where `in_run` trusts sweeps: flow asks about eight
# conditions per job in each pass. `operation_ran` starts a new sweep.
_trust_sweeps: ContextVar[bool] = ContextVar("aexp_trust_sweeps", default=False)
_sweep = 0
_swept: dict[str, int] = {}  # path -> the sweep its facts were derived or checked in


@contextmanager
def in_run(*, execute_binds: bool, trust_sweeps: bool) -> Iterator[None]:
    """The block is a `run` of the workflow. `execute_binds` (it runs `execute`):
    `needs_binding` is false, so `execute` binds an unbound job in its attempt, with the
    attempt's own record, and a new job costs one document write and one operation of flow,
    not two of each (docs/benchmarks.md); a `run -o init_tracker` binds as before.
    `trust_sweeps` (operations run in this process, and `operation_ran` is told of each): a
    job's facts are checked against its document once per sweep of flow over the jobs.
    Applies to the current thread (context)."""
    binds = _execute_binds.set(execute_binds)
    trust = _trust_sweeps.set(trust_sweeps)
    try:
        yield
    finally:
        _trust_sweeps.reset(trust)
        _execute_binds.reset(binds)


def operation_ran() -> None:
    """An operation ran in this process (it may have changed any job): the next question about
    a job looks at its document again."""
    global _sweep
    _sweep += 1


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


def needs_sync_of(binding: dict[str, Any]) -> bool:
    """A run that some backend still has to receive from a login node, once it is finished or
    preempted: a W&B offline run (or a live backend that failed during an attempt), or a backend
    fed by replay (MLflow). The sync's own rule (aexp.sync.rules.needs_sync), so the
    `sync_offline` operation and `aexp sync-offline` agree on every run.
    """
    return _sync_rule(binding)


def backend_label_of(binding: dict[str, Any]) -> str:
    """The backends of a binding as `status` shows them: "wandb-offline", "wandb+mlflow", ..."""
    offline = bool(binding.get("offline"))
    key = (offline, *backend_parts(binding))
    label = _labels.get(key)
    if label is None:
        names = [
            f"{name}-offline"
            if offline and getattr(ADAPTERS.get(name), "feed", "live") == "live"
            else name
            for name in key[1:]
        ]
        label = _labels[key] = sys.intern("+".join(names))
    return label


def _unreadable(message: str) -> Facts:
    return Facts(message, False, None, None, None, False, False, None, 0)


def _derive(job: Any, doc: dict[str, Any] | None) -> Facts:
    # Staleness is judged at each question (it changes with time, not with the files), with
    # the bound the question brings: the state is read here without judging it.
    seen = job_state(job, doc, stale_after=math.inf)
    if seen.state == CORRUPT:
        return _unreadable(seen.problem or "")
    if seen.state == UNBOUND:
        return _UNBOUND
    binding = seen.binding
    state = sys.intern(seen.state)
    mark = seen.mark if state == RUNNING else None
    attempts = binding.get("attempts") or 0
    return Facts(
        None,
        True,
        backend_label_of(binding),
        state,
        binding.get("finished_at"),
        bool(binding.get("synced_at")),
        needs_sync_of(binding),
        mark,
        max(attempts, mark.attempt or 0) if mark else attempts,
        sys.intern(seen.last_pass) if seen.last_pass else None,
    )


def facts_of(job: Any, *, fresh: bool = False) -> Facts:
    """The job's Facts (anything with `id` and `path`): derived once per version of its
    document (once per job inside `snapshot()`); `fresh` derives them again from the document
    and the journal as they are now (an attempt that ended without its document's record
    changes only the journal). Never raises for a damaged document."""
    return _facts_of(job, fresh)


def _facts_of(job: Any, fresh: bool = False, doc: dict[str, Any] | None = None) -> Facts:
    # `doc`: what `read_doc(job)` returned a moment ago, when the caller has it (no second stat).
    path = job.path
    seen = _snapshot.get()
    if seen is not None:
        facts = seen.get(path)
        if facts is None:
            facts = seen[path] = _derive(job, None)
        return facts
    trusted = _trust_sweeps.get()
    if trusted and not fresh and _swept.get(path) == _sweep:
        return _facts[path]
    if doc is None:
        try:
            doc = read_doc(job)
        except BindingError as exc:
            return _unreadable(str(exc))
    if _facts_docs.get(path) is doc and (not fresh or _doc_alone(_facts[path], doc)):
        facts = _facts[path]
    else:
        facts = _derive(job, doc)
        _facts_docs[path] = doc
        _facts[path] = facts
    if trusted:
        _swept[path] = _sweep
    return facts


def _doc_alone(facts: Facts, doc: dict[str, Any]) -> bool:
    """The facts came from the document alone, the journal unread (`job_state`): a damaged
    document, or a run whose end the document records. Derived again they would be the same,
    however fresh: the same document object is the same version of the file."""
    return facts[_ERROR] is not None or (facts[_STATE] in _ENDED and doc.get("tracker") is not None)


_ENDED = frozenset((COMPLETED, FAILED, FINISHED))


def say(line: str) -> None:
    """Print one line on stderr; while flow draws a progress bar there (`status`), above it
    rather than glued to its end (tqdm is flow's, and loaded by then)."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None and hasattr(tqdm, "tqdm"):
        tqdm.tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def warn_once(job: Any, message: str) -> None:
    """One warning line per job and process (a corrupt job is reported once, not per check)."""
    if job.id not in _warned:
        _warned.add(job.id)
        say(f"warning: {message}")


def _usable(job: Any) -> Facts | None:
    """The facts of a bound job; None if unbound, or corrupted (warned about once per process)."""
    facts = _facts_of(job)
    if facts[_ERROR] is not None:
        warn_once(job, facts[_ERROR])
        return None
    return facts if facts[_BOUND] else None


def _state(job: Any) -> str | None:
    facts = _usable(job)
    return facts[_STATE] if facts else None


# -- conditions -------------------------------------------------------------------------------
def is_corrupt(job: Any) -> bool:
    """The job's document or binding cannot be read."""
    return _facts_of(job)[_ERROR] is not None


def is_unbound(job: Any, doc: dict[str, Any] | None = None) -> bool:
    """Not bound yet, and nothing corrupted in the way of binding it. `doc`: the job's document
    as `aexp.jobdoc.read_doc` returned it just now, when the caller has it."""
    facts = _facts_of(job, doc=doc)
    if facts[_ERROR] is not None:
        warn_once(job, facts[_ERROR])
        return False
    return not facts[_BOUND]


def needs_binding(job: Any) -> bool:
    """Unbound, nothing corrupted in the way of binding it, and no `execute` in this pass that
    binds it itself (`in_run`): `init_tracker`'s precondition. (Such a pass asks `can_execute`
    too, which warns of a corrupted job.)"""
    return not _execute_binds.get() and is_unbound(job)


def is_bound(job: Any) -> bool:
    return _usable(job) is not None


def can_execute(job: Any, stale_after: float) -> bool:
    """Unbound (`execute` binds it in its attempt), or bound and not ended: never run,
    preempted, or running with a stale heartbeat."""
    facts = _facts_of(job)
    if facts[_ERROR] is not None:
        warn_once(job, facts[_ERROR])
        return False
    if not facts[_BOUND]:
        return True
    state = facts[_STATE]
    if state in (BOUND, PREEMPTED):
        return True
    return state == RUNNING and is_stale(facts[_MARK], stale_after)


def execute_ended(job: Any) -> bool:
    """The last attempt completed or failed (a preempted one has not ended)."""
    return _state(job) in (COMPLETED, FAILED, FINISHED)


def needs_finish(job: Any) -> bool:
    """The last attempt ended but the run's end was not recorded (its process died, or an older
    aexp left it `completed`)."""
    facts = _usable(job)
    return bool(facts and facts[_STATE] in (COMPLETED, FAILED, FINISHED) and not facts[_FINISHED])


def is_finished(job: Any) -> bool:
    """The run's end is recorded (successfully or as failed)."""
    facts = _usable(job)
    return bool(facts and facts[_FINISHED])


def is_synced(job: Any) -> bool:
    facts = _usable(job)
    return bool(facts and facts[_SYNCED])


def needs_sync(job: Any) -> bool:
    """A finished run that a backend still has to receive (see `needs_sync_of`)."""
    facts = _usable(job)
    return bool(facts and facts[_NEEDS_SYNC])


def outside_allocation() -> bool:
    """Not inside a SLURM allocation (compute nodes have no network; SLURM sets SLURM_JOB_ID)."""
    return not os.environ.get("SLURM_JOB_ID")


# -- labels -----------------------------------------------------------------------------------
def backend_label(job: Any) -> str | None:
    facts = _usable(job)
    return facts[_BACKEND] if facts else None


def state_label(job: Any) -> str | None:
    facts = _usable(job)
    if not facts:
        return None
    return "synced" if facts[_SYNCED] else facts[_STATE]


def stale_label(job: Any, stale_after: float) -> bool:
    facts = _usable(job)
    return bool(facts and facts[_STATE] == RUNNING and is_stale(facts[_MARK], stale_after))


def stalled_label(job: Any, stale_after: float, stall_after: float) -> bool:
    """Running and alive, but its journal has logged nothing for longer than its own pace
    allows (aexp.state.is_stalled; `stall_after`: the least silence that counts)."""
    facts = _usable(job)
    if not facts or facts[_STATE] != RUNNING:
        return False
    mark = facts[_MARK]
    return not mark.ended and not is_stale(mark, stale_after) and is_stalled(mark, stall_after)


__all__ = [
    "Facts",
    "backend_label",
    "backend_label_of",
    "can_execute",
    "execute_ended",
    "facts_of",
    "in_run",
    "is_bound",
    "is_corrupt",
    "is_finished",
    "is_synced",
    "is_unbound",
    "needs_binding",
    "needs_finish",
    "needs_sync",
    "needs_sync_of",
    "operation_ran",
    "outside_allocation",
    "say",
    "snapshot",
    "stale_label",
    "stalled_label",
    "state_label",
    "warn_once",
]
