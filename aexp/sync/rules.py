"""When a run is synced, and to which backends: the rules every reader of a binding shares.

The sync (plan.py, record.py), the workflow's `sync_offline` condition
(aexp.workflow.conditions.needs_sync_of), `aexp rerun` and `aexp remove` all ask these questions of
a binding, so they answer them here, once, from the binding alone (no signac, no SDK):

- which backends receive the run from a login node (`backend_needs_sync`): a backend fed by
  replay always; a live one (W&B) when the run is offline or the backend failed during an
  attempt; the journal itself never;
- when a run is due (`sync_due`): once it is finished (`finished_at`) or preempted, the run as its
  journal holds it so far; a new attempt clears every `synced_at`, and the next sync adds it;
- which backends still lack it (`unsynced_backends`), and whether the run needs a sync at all
  (`needs_sync`);
- whether the job is in the hands of an executing attempt (`still_executing`): the one place the
  sync and `aexp remove` decide it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aexp.binding import backend_parts
from aexp.schema import BOUND, PREEMPTED, RUNNING
from aexp.trackers import ADAPTERS

if TYPE_CHECKING:
    from aexp.state import Mark


def feed_of(name: str) -> str:
    """How backend `name` is fed ("live", "replay", "journal"), from the registry (no SDK)."""
    return str(getattr(ADAPTERS.get(name), "feed", "live"))


def backend_needs_sync(name: str, part: Mapping[str, Any], *, offline: bool) -> bool:
    """Whether backend `name` of a run has to receive it from a login node at all: a backend fed
    by replay always; a live one when the run is offline or the backend failed during an
    attempt (then the journal fills in what it missed); the journal itself never."""
    feed = feed_of(name)
    return feed == "replay" or (feed == "live" and (offline or bool(part.get("error"))))


def sync_due(binding: Mapping[str, Any]) -> bool:
    """Whether the run is to be synced now: finished (`finished_at`) or preempted. A running run
    (or one whose attempt died: `execute` resumes it) and a run never executed are not."""
    return bool(binding.get("finished_at")) or binding.get("state") == PREEMPTED


def unsynced_backends(binding: Mapping[str, Any]) -> list[str]:
    """The backends that receive the run from a login node and hold no `synced_at` for it: what
    `aexp remove` and `aexp rerun` would leave in the job only."""
    offline = bool(binding.get("offline"))
    return [
        name
        for name, part in backend_parts(binding).items()
        if backend_needs_sync(name, part, offline=offline) and not part.get("synced_at")
    ]


def needs_sync(binding: Mapping[str, Any]) -> bool:
    """A run that is due (`sync_due`) and that some backend still lacks: what `aexp sync-offline`
    works on and what makes the `sync_offline` operation eligible."""
    if binding.get("synced_at") or not sync_due(binding):
        return False
    return bool(unsynced_backends(binding))


def runs_only_here(job_path: str, binding: Mapping[str, Any] | None) -> list[str]:
    """The runs of the job at `job_path` that exist nowhere else, as `run <id> (not on <backends>)`
    (`previous run ...` for one a rerun kept): what deleting the job deletes for good.

    Read from the job's run journals (`tracker_log/<run>/`), not from its document alone: a run
    whose first attempt was killed before the document recorded it, or whose document cannot be
    read (`binding` None), exists in its journal all the same. A run counts once an attempt
    opened it (its journal holds more than `init_run`) and some backend that receives runs from
    a login node (`backend_needs_sync`; the backends and offline flag of its `init_run`) has no
    `synced_at` for it in `binding` (its current run, or a previous run a rerun kept). Runs the
    binding knows that left no journal are judged from the binding alone.
    """
    from aexp.journal import read_tail
    from aexp.journal.format import JOURNAL_DIR, journal_file
    from aexp.journal.reader import read_head

    known: dict[str, tuple[str, Mapping[str, Any], bool]] = {}
    if binding:
        offline = bool(binding.get("offline"))
        known[binding["run_id"]] = ("run", binding, binding.get("state") != BOUND)
        for previous in binding.get("previous_runs") or []:
            if not isinstance(previous, Mapping) or not previous.get("run_id"):
                continue
            name = previous.get("backend") or binding["backend"]
            parts = previous.get("backends") or {name: {"synced_at": previous.get("synced_at")}}
            former = {"offline": offline, "backends": parts}
            known[previous["run_id"]] = ("previous run", former, previous.get("state") != BOUND)
    try:
        journals = os.listdir(f"{job_path}{os.sep}{JOURNAL_DIR}")
    except OSError:
        journals = []
    ran: dict[str, Mapping[str, Any]] = {}  # run id -> its journal's init_run event
    for run_id in journals:
        path = journal_file(job_path, run_id)
        if read_tail(path, steps=False).event in (None, "init_run"):
            continue  # bound, never executed: nothing logged to lose
        ran[run_id] = read_head(path) or {}
    found = []
    # The job's run, then the previous runs in the binding's order, then runs only a journal knows.
    for run_id in [*known, *sorted(set(ran) - set(known))]:
        if run_id in known:
            what, recorded, executed = known[run_id]
            if not (executed or run_id in ran):
                continue
            missing = unsynced_backends(recorded)
        else:  # only its journal knows the run: every backend it was bound with lacks it
            what, init = "run", ran[run_id]
            names = [n for n in init.get("backends") or [] if isinstance(n, str)]
            offline = bool(init.get("offline", True))
            missing = [n for n in names if backend_needs_sync(n, {}, offline=offline)]
        if missing:
            found.append(f"{what} {run_id} (not on {', '.join(missing)})")
    return found


def executing_attempt(job: Any, doc: Mapping[str, Any], stale_after: float) -> Mark | None:
    """The execution attempt that holds the run, or None: the job's state (aexp.state.job_state:
    the document, and the journal for an attempt that has not recorded its start yet) is
    `running` and its attempt is not known to be dead after `stale_after` seconds of silence,
    whatever node it runs on. The sync leaves such a job alone and `aexp remove` refuses it."""
    from aexp.state import job_state  # here: a pass that finds nothing to do never needs it

    seen = job_state(job, doc, stale_after=stale_after)
    return seen.mark if seen.state == RUNNING and not seen.stale else None


def still_executing(job: Any, doc: Mapping[str, Any], stale_after: float) -> bool:
    """Whether an execution attempt holds the run (`executing_attempt`)."""
    return executing_attempt(job, doc, stale_after) is not None


__all__ = [
    "backend_needs_sync",
    "executing_attempt",
    "feed_of",
    "needs_sync",
    "runs_only_here",
    "still_executing",
    "sync_due",
    "unsynced_backends",
]
