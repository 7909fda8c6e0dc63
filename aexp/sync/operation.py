"""The sync as the flow operation `sync_offline` (project.py) runs it: one sync per pass.

flow calls an operation once per job, but `wandb sync` costs about a second to start: one sync
per job made 50 runs take 54 s, against 6 s for one `aexp sync-offline`. So the operation works
in passes. flow evaluates every job's preconditions before it runs the pass's operations;
`sync_ready`, the precondition, notes each job it finds eligible. The first `sync_operation` call
of the pass then syncs every noted job in one go (one `aexp.sync.sync_offline_runs` over them),
and the calls for the other jobs of the pass return at once. A job whose precondition was never
evaluated (`project.py exec sync_offline <id>`) is synced on its own when it is called.

A host that cannot sync (inside a SLURM allocation, no W&B credentials: `hosts.sync_blocker`)
makes the operation ineligible; the reason is said once per process, not once per job.
Failures are one line each on stderr, never an exception: the job stays unsynced and the
operation is eligible again at the next `run`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aexp.errors import AexpError
from aexp.settings import Settings
from aexp.sync.hosts import sync_blocker

if TYPE_CHECKING:
    from aexp.sync.result import SyncResult

# Jobs (by path) found eligible since they were last synced by this process, and the jobs a
# pass's sync took care of (their own calls return at once). Per process: flow's parallel
# workers (`run -p N`) each sync the jobs they are given.
_pending: dict[str, Any] = {}
_handled: set[str] = set()
_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        print(message, file=sys.stderr)


def sync_ready(job: Any) -> bool:
    """The precondition of `sync_offline`: the job's run needs a sync (finished, some backend not
    synced: aexp.workflow.needs_sync), this process is outside a SLURM allocation, and this host
    can sync (said once per process when it cannot). Notes the job for the pass's sync."""
    from aexp.workflow import needs_sync, outside_allocation

    if not needs_sync(job) or not outside_allocation():
        return False
    blocker = sync_blocker()
    if blocker is not None:
        _say_once(f"sync_offline: not run on this host: {blocker}.")
        return False
    _pending[job.path] = job
    _handled.discard(job.path)
    return True


def sync_operation(job: Any, settings: Settings, **kwargs: Any) -> list[SyncResult]:
    """The body of `sync_offline`: sync every job noted by `sync_ready` (and `job`) in one go,
    unless this pass's sync already took care of `job`. `kwargs` go to `sync_offline_runs`.
    Returns the results of the sync it ran ([] when it ran none)."""
    if job.path in _handled:
        return []
    blocker = sync_blocker()
    if blocker is not None:
        _say_once(f"sync_offline: not run on this host: {blocker}.")
        return []
    batch = {**_pending, job.path: job}
    _pending.clear()
    _handled.update(batch)
    return sync_jobs(batch.values(), settings, **kwargs)


def sync_jobs(jobs: Iterable[Any], settings: Settings, **kwargs: Any) -> list[SyncResult]:
    """Sync the runs of `jobs` (jobs of one project: signac jobs or aexp.jobdoc.JobDir) in one
    sync. `kwargs` go to `sync_offline_runs`. Prints one line per failure to stderr and never
    raises for a failed upload or an AexpError (printed as one `error:` line, returning [])."""
    from aexp.sync.driver import sync_offline_runs  # here: `project.py --help` needs none of it

    jobs = list(jobs)
    if not jobs:
        return []
    root = os.path.dirname(os.path.dirname(jobs[0].path))  # <root>/workspace/<job id>
    try:
        results = sync_offline_runs(
            root, job_ids=[job.id for job in jobs], settings=settings, **kwargs
        )
    except AexpError as exc:
        print(f"sync_offline: error: {exc}", file=sys.stderr)
        return []
    for r in results:
        if not r.ok:
            reason = next(
                (ln for ln in reversed((r.stderr or "").splitlines()) if ln.strip()), "failed"
            )
            where = r.path if r.backend == "wandb" else r.backend
            print(
                f"sync_offline: job {r.job_id} run {r.run_id} not synced ({where}): {reason}",
                file=sys.stderr,
            )
    return results


__all__ = ["sync_jobs", "sync_operation", "sync_ready"]
