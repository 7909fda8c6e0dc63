"""The workflow's conditions and labels: plain functions of a job that read its document.

Conditions and labels see a job through a small tuple of facts taken from its document (bound?
state, backends, offline, finished, synced, needs a sync, or the reason it cannot be read; and
the document itself while the job is running, for `is_stale`). Outside `snapshot()` the facts are
re-derived only when the document changed (`read_doc` is cached per file change); inside
`snapshot()`, which project.py wraps around `status`, each job document is read exactly once for
all of its conditions and labels and the parsed document is not kept, so a status over 100,000
jobs holds a few hundred bytes per job, not the documents. A job whose document was damaged
(aexp/schema.py) is never eligible for anything; it shows the `corrupt` label and one warning
naming the job, and every other job carries on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aexp.attempts import is_stale  # not aexp.lifecycle: status loads no attempt machinery
from aexp.binding import backend_parts, get_binding
from aexp.errors import BindingError
from aexp.jobdoc import peek_doc, read_doc
from aexp.schema import BOUND, COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING
from aexp.trackers import ADAPTERS

_warned: set[str] = set()

# What the conditions and labels know about a job, as a plain tuple (of atomic values but for
# the running doc: the garbage collector stops tracking those, which matters when a status holds
# 100,000 of them):
#   (error, bound, backend label, state, finished, synced, needs sync, running_doc)
# error is the BindingError message when the document or binding cannot be read, else None;
# running_doc is the document of a job whose run is running (what `is_stale` judges), else None.
_ERROR, _BOUND, _BACKEND, _STATE, _FINISHED, _SYNCED, _NEEDS_SYNC, _RUNNING_DOC = range(8)
Facts = tuple[Any, ...]
_UNBOUND: Facts = (None, False, None, None, False, False, False, None)
# Outside a snapshot: the facts of each job by path, and the parsed document they came from
# (`read_doc` returns the same dict until the file changes). Two dicts, not one of pairs.
_facts_docs: dict[str, dict[str, Any]] = {}
_facts: dict[str, Facts] = {}
# Inside a snapshot: {path: facts} of the jobs seen so far in it.
_snapshot: ContextVar[dict[str, Facts] | None] = ContextVar("aexp_status_snapshot", default=None)
_labels: dict[tuple[Any, ...], str] = {}
# Unbound jobs (by path) that `can_execute` found eligible in this process: `execute` will bind
# them (see `binds_in_execute`).
_binds_in_execute: set[str] = set()


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
    from aexp.sync.rules import needs_sync  # aexp.sync is lazy: this loads the rules alone

    return needs_sync(binding)


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


def _unreadable(exc: BindingError) -> Facts:
    return (str(exc), False, None, None, False, False, False, None)


def _derive(job: Any, doc: dict[str, Any] | None) -> Facts:
    try:
        if doc is None:
            doc = peek_doc(job)  # raises BindingError for a document that is not JSON
        binding = get_binding(job, doc)
    except BindingError as exc:
        return _unreadable(exc)
    if binding is None:
        return _UNBOUND
    state = sys.intern(binding["state"])
    return (
        None,
        True,
        backend_label_of(binding),
        state,
        bool(binding.get("finished_at")),
        bool(binding.get("synced_at")),
        needs_sync_of(binding),
        doc if state == RUNNING else None,
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


def is_unbound(job: Any) -> bool:
    """Not bound yet, and nothing corrupted in the way of binding it."""
    facts = _facts_of(job)
    if facts[_ERROR] is not None:
        warn_once(job, facts[_ERROR])
        return False
    return not facts[_BOUND]


def is_bound(job: Any) -> bool:
    return _usable(job) is not None


def can_execute(job: Any, stale_after: float) -> bool:
    """Unbound (`execute` binds it in its attempt's first update), or bound and not ended:
    never run, preempted, or running with a stale heartbeat.

    An unbound job found eligible is noted (`binds_in_execute`): `init_tracker` of the same pass
    leaves it to `execute`, so a new job costs one document write to start, not two, and one
    pass of flow, not two (docs/benchmarks.md).
    """
    facts = _facts_of(job)
    if facts[_ERROR] is not None:
        warn_once(job, facts[_ERROR])
        return False
    if not facts[_BOUND]:
        if _snapshot.get() is None:  # `status` runs nothing: keep no note per job
            _binds_in_execute.add(job.path)
        return True
    state = facts[_STATE]
    if state in (BOUND, PREEMPTED):
        return True
    return state == RUNNING and is_stale(facts[_RUNNING_DOC], stale_after)


def binds_in_execute(job: Any) -> bool:
    """True when this process found the unbound job eligible for `execute`, which binds it in
    its attempt's first document update: flow evaluates every operation of a pass before it
    runs any, so an `init_tracker` of the same pass that bound it too would cost a second write
    (and `run -o init_tracker`, which never asks `can_execute`, still binds)."""
    return job.path in _binds_in_execute


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
    return bool(facts and facts[_STATE] == RUNNING and is_stale(facts[_RUNNING_DOC], stale_after))


__all__ = [
    "backend_label",
    "backend_label_of",
    "binds_in_execute",
    "can_execute",
    "execute_ended",
    "is_bound",
    "is_corrupt",
    "is_finished",
    "is_synced",
    "is_unbound",
    "needs_finish",
    "needs_sync",
    "needs_sync_of",
    "outside_allocation",
    "say",
    "snapshot",
    "stale_label",
    "state_label",
    "warn_once",
]
