"""The sync as the flow operation `sync_offline` (project.py) runs it: one sync per pass.

flow calls an operation once per job, but `wandb sync` costs about a second to start: one sync
per job made 50 runs take 54 s, against 6 s for one `aexp sync-offline`. So the operation works
in passes. flow evaluates every job's preconditions before it runs the pass's operations;
`sync_ready`, the precondition, notes each job it finds eligible. The first `sync_operation` call
of the pass then syncs every noted job in one go (one `aexp.sync.sync_offline_runs` over them),
and the calls for the other jobs of the pass return at once. A job whose precondition was never
evaluated (`project.py exec sync_offline <id>`) is synced on its own when it is called.

Host checks are per backend (hosts.backend_blocker): the operation is eligible for a job when
some backend its run still lacks can be synced from this host (W&B: credentials; MLflow: its
package), and outside a SLURM allocation. Each backend that cannot is said once per process,
not once per job, and the pass's sync leaves it out. Failures are one line each on stderr, then
one summary line per backend (aexp.sync.report), never an exception: the job stays unsynced and
the operation is eligible again at the next `run`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aexp.binding import get_binding
from aexp.errors import AexpError
from aexp.settings import Settings
from aexp.sync.hosts import backend_blocker
from aexp.sync.rules import unsynced_backends
from aexp.workflow.conditions import needs_sync, outside_allocation

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


def _blocked(name: str) -> bool:
    """Whether backend `name` cannot be synced from this host (said once per process)."""
    blocker = backend_blocker(name)
    if blocker is not None:
        _say_once(f"sync_offline: {name} not synced from this host: {blocker.reason}.")
    return blocker is not None


def sync_ready(job: Any) -> bool:
    """The precondition of `sync_offline`: the job's run needs a sync (finished or preempted,
    some backend not synced: aexp.workflow.needs_sync), this process is outside a SLURM
    allocation, and some backend the run still lacks can be synced from this host (each one
    that cannot is said once per process). Notes the job for the pass's sync."""
    if not needs_sync(job):
        return False
    if not outside_allocation():
        return False
    lacking = unsynced_backends(get_binding(job) or {})
    if all(_blocked(name) for name in lacking):
        return False
    _pending[job.path] = job
    _handled.discard(job.path)
    return True


def sync_operation(job: Any, settings: Settings, **kwargs: Any) -> list[SyncResult]:
    """The body of `sync_offline`: sync every job noted by `sync_ready` (and `job`) in one go,
    unless this pass's sync already took care of `job`; backends this host cannot sync to are
    left out. `kwargs` go to `sync_offline_runs`. Returns the results of the sync it ran ([]
    when it ran none)."""
    from aexp.binding import backend_parts

    if job.path in _handled:
        return []
    batch = {**_pending, job.path: job}
    _pending.clear()
    _handled.update(batch)
    names = {n for j in batch.values() for n in backend_parts(get_binding(j) or {"backend": ""})}
    allowed = sorted(n for n in names if n and not _blocked(n))
    if not allowed:
        return []
    return sync_jobs(batch.values(), settings, backends=allowed, **kwargs)


def sync_jobs(jobs: Iterable[Any], settings: Settings, **kwargs: Any) -> list[SyncResult]:
    """Sync the runs of `jobs` (jobs of one project: signac jobs or aexp.jobdoc.JobDir) in one
    sync. `kwargs` go to `sync_offline_runs`. Prints one line per failure to stderr, then the
    summary per backend, and never raises for a failed upload or an AexpError (printed as one
    `error:` line, returning [])."""
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
    from aexp.sync.report import failure_lines, summarize

    for line in failure_lines(results):
        print(f"sync_offline: {line.removeprefix('failed: ')}", file=sys.stderr)
    summary = summarize(results)
    if summary.backends or summary.corrupt:
        print(f"sync_offline: {summary.line()}", file=sys.stderr)
    return results


__all__ = ["sync_jobs", "sync_operation", "sync_ready"]
