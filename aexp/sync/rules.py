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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aexp.binding import backend_parts
from aexp.schema import PREEMPTED, RUNNING
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
    "still_executing",
    "sync_due",
    "unsynced_backends",
]
