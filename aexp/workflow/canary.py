"""`python project.py run --canary N`: the first N jobs first, one at a time; the first that fails
stops the pass before any other job runs.

The local counterpart of `submit --canary` (aexp.slurm.canary): a bug in the experiment shows in
one job's traceback instead of in every job of the sweep.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from aexp.schema import FAILED
from aexp.workflow.conditions import can_execute, facts_of


def _each_job(project: Any, jobs: Any) -> Iterator[Any]:
    """The jobs `run` was given: flow's aggregates (tuples of jobs), or every job (None)."""
    if jobs is None:
        yield from project
        return
    for aggregate in jobs:
        yield from aggregate


def run_canary(project: Any, jobs: Any, names: Any, count: int, **kwargs: Any) -> bool:
    """Run `count` canaries of `project` (a WorkflowProject): the first jobs among `jobs` that
    `execute` would run, each in a pass of its own (`project.run`). Returns True when all of
    them succeeded (the pass goes on with every job), False after saying which one failed."""
    stale_after = project.settings.stale_after
    chosen = [job for job in _each_job(project, jobs) if can_execute(job, stale_after)]
    for index, job in enumerate(chosen[:count]):
        project.canary = None  # the canary's own pass runs plainly
        try:
            project.run(jobs=[(job,)], names=names, **kwargs)
        finally:
            project.canary = count
        if facts_of(job, fresh=True).state == FAILED or project.exit_code:
            print(
                f"canary: job {job.id} failed; stopped before running any other job "
                f"({len(chosen) - index - 1} more eligible, left as they are). Fix it, then: "
                f"aexp rearm {job.id} && python project.py run --canary",
                file=sys.stderr,
            )
            return False
    return True


__all__ = ["run_canary"]
