"""sync_jobs: the sync as the flow operation `sync_offline` (project.py) runs it, for some jobs,
reporting failures on stderr instead of raising."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from aexp.errors import AexpError
from aexp.settings import Settings
from aexp.sync.driver import sync_offline_runs
from aexp.sync.result import SyncResult


def sync_jobs(jobs: Iterable[Any], settings: Settings, **kwargs: Any) -> list[SyncResult]:
    """Upload the offline runs of `jobs` (signac jobs of one project; the `sync_offline`
    operation). `kwargs` go to `sync_offline_runs`. Prints one line per failure to stderr and
    never raises for a failed upload or an AexpError (printed as one `error:` line, returning
    []): the job stays unsynced and the operation is eligible again at the next `run`."""
    jobs = list(jobs)
    if not jobs:
        return []
    root = jobs[0].project.path
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
            print(
                f"sync_offline: job {r.job_id} run {r.run_id} not synced ({r.path}): {reason}",
                file=sys.stderr,
            )
    return results
