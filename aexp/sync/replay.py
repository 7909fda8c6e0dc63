"""Backends fed by replay (`feed = "replay"`, e.g. MLflow): the run's journal replayed into them.

Compute nodes never touch these backends; at sync, each finished (or preempted) run whose part of
the binding has no `synced_at` yet is handed to the backend's adapter as its journal
(`TrackerAdapter.replay(journal, job_path=..., state=...)`, aexp/trackers/base.py), together with
the `state` the previous replay returned. The adapter sends what the backend does not hold yet
(replays are idempotent) and returns a `ReplayResult`; its `url` and `state` go into the
backend's part, and `synced_at` once the backend holds the run (`complete`; for a preempted run,
what the journal holds so far).

Every replay is recorded in flight in the backend's part before it starts (`inflight`: the
journal's rows and artifacts) and leaves it once its outcome is recorded. A replay ended by
anything else (Ctrl-C, SIGTERM, a full disk, a crash, a `kill -9`) leaves the record, and the next
sync first asks the backend what it holds (`adapter.remote_state`): a backend that holds the whole
journal already is recorded synced and sent nothing; otherwise the run is replayed, which sends
only what is missing. A replay whose in-flight record cannot be written does not start.

Each replay (and question) is bounded by the sync's timeout, whatever the backend
(deadline.within), on top of the backend's own limits. A backend that fails (its SDK missing, its
server unreachable or answering errors, the timeout, a bug) is recorded in its part (`error`)
and reported as one failed result: the other backends and the other jobs go on.
"""

from __future__ import annotations

import time
from typing import Any

from aexp.binding import backend_parts
from aexp.handles import adapter_for
from aexp.journal import Journal
from aexp.settings import Settings
from aexp.sync.deadline import DeadlineExceeded, within
from aexp.sync.plan import JobWork
from aexp.sync.record import record_backend, record_inflight
from aexp.sync.result import SyncResult, replay_result

# How a replay cut off by the timeout is reported (DeadlineExceeded's words, which an SDK that
# wraps the exception keeps in its own message).
TIMED_OUT = "it took longer than the timeout"


def _sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:500]


def replay_backend(
    work: JobWork,
    name: str,
    journal: Journal,
    *,
    dry_run: bool,
    settings: Settings | None = None,
    root: str | None = None,
    timeout: float | None = None,
    resync: bool = False,
) -> SyncResult:
    """Replay `work`'s run into backend `name` and record the outcome (module docstring).

    `settings` and `root` are the project's: the adapter is made as they configure it (MLflow:
    the tracking URI of signac.rc, or MLFLOW_TRACKING_URI, and the request limits of its
    `[sync] timeout`). `timeout`: seconds the replay may take (None: unbounded). `resync`:
    replay even what the backend holds (no question asked first).

    Must be called with the job's claim held (a dry run changes nothing and needs none).
    Never raises for a failure of the backend: the result says `ok=False` with the reason.
    """
    job_id, run_id = work.job_id, work.run_id

    def result(**fields: Any) -> SyncResult:
        return replay_result(name, journal.path, job_id, run_id, **fields)

    if not journal.path.exists():
        return result(ok=True, skipped="the run has no journal to replay")
    if dry_run:
        return result(ok=True, stdout=f"dry run: would replay into {name}")
    part = backend_parts(work.binding).get(name) or {}
    attempts = work.binding.get("attempts")
    t0 = time.monotonic()

    def took() -> float:
        return round(time.monotonic() - t0, 3)

    try:
        with within(timeout):
            adapter = adapter_for(work.binding, name, settings=settings, root=root)
            state = dict(part.get("state") or {})
            if part.get("inflight") and not resync:
                held = adapter.remote_state(journal, job_path=work.job.path, state=state)
                if held is not None and held.complete:
                    record_backend(
                        work.job,
                        run_id,
                        name,
                        attempts=attempts,
                        through=True,
                        url=held.url,
                        state=dict(held.state or state),
                        error=None,
                        inflight=None,
                    )
                    return result(
                        ok=True,
                        stdout=f"{name} already holds the whole run (a replay cut short had "
                        "sent it): recorded, nothing sent",
                        duration=took(),
                    )
            marked = record_inflight(
                work.job,
                run_id,
                name,
                rows=len(journal.history()),
                artifacts=len(journal.artifacts),
            )
            if marked is None:
                return result(
                    ok=False,
                    stderr=f"not replayed into {name}: the job document could not record the "
                    "replay before it started (see the warning above)",
                    duration=took(),
                )
            replayed = adapter.replay(journal, job_path=work.job.path, state=state)
    except Exception as exc:  # any failure of one backend stays with that backend
        reason = f"the {name} backend failed: {_sentence(exc)}"
        if isinstance(exc, DeadlineExceeded) or TIMED_OUT in reason:
            reason = f"the {name} backend failed: {TIMED_OUT} ({timeout:g} s)"
        record_backend(work.job, run_id, name, attempts=attempts, through=False, error=reason)
        return result(ok=False, stderr=reason, duration=took())
    through = replayed.complete or not work.binding.get("finished_at")
    record_backend(
        work.job,
        run_id,
        name,
        attempts=attempts,
        through=through,
        url=replayed.url,
        state=dict(replayed.state or {}),
        error=None,
        inflight=None,
    )
    return result(
        ok=True,
        stdout=(
            f"replayed into {name}: {replayed.rows} {replayed.unit}(s), "
            f"{replayed.artifacts} artifact(s)"
        ),
        duration=took(),
    )


__all__ = ["TIMED_OUT", "replay_backend"]
