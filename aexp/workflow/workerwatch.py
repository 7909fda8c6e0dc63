"""`run -p N` outlives a pool worker that is killed: the operations it lost are named, not waited for.

flow runs `-p N` on a `multiprocessing.Pool`. When one of its workers dies without returning
(kill -9, the OOM killer, a segfault in a native library), the pool starts a new worker but the
dead one's task is gone: its result never comes, and flow's pass waits for it forever (a SLURM
allocation then idles until its time limit). So each operation records which worker process
took it, in a table the pool's workers share with the pass (`StartTable`, made before the pool
forks them); the pass waits for each result in short slices and, when the process that took an
operation is gone and its result still has not come, counts the operation as lost and goes on
with the others. The lost operation's attempt was recorded in its job as running in that
process, so aexp.state sees it interrupted at once (its process is gone) and the next `run`
resumes it.

Only where the pool forks its workers (Linux's default): a worker started otherwise cannot share
the table, and such a pool is left as flow makes it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

# How often (seconds) the pass looks whether the worker of the operation it waits for is gone,
# and how long (seconds) it still waits for a result after that: a worker that ends right after
# sending its result (aexp.workflow.forked.exit_soon) is not counted as lost.
POLL_S = 0.5
GRACE_S = 2.0

_table: Any = None  # the current pass's StartTable, inherited by the workers its pool forks


class StartTable:
    """Which process took each of `count` operations (0: not taken yet), in shared memory that
    the pool's workers inherit when they are forked, so make it before the pool."""

    def __init__(self, count: int) -> None:
        # A RawArray: one worker writes each slot once; the pass only reads.
        self.pids = multiprocessing.RawArray("q", max(count, 1))

    def __enter__(self) -> StartTable:
        global _table
        _table = self
        return self

    def __exit__(self, *exc: Any) -> None:
        global _table
        _table = None


def tracking() -> StartTable | None:
    """The current pass's table, or None (a serial run, or a pool that does not fork)."""
    return _table


def run_taken(index: int, function: Callable[..., Any], *args: Any) -> Any:
    """Run in a pool worker: record this process as the taker of operation `index`, then return
    `function(*args)` (flow's own task)."""
    from aexp.joblock import current_pid

    if _table is not None:
        _table.pids[index] = current_pid()
    return function(*args)


class WatchedPool:
    """The part of a `multiprocessing.Pool` flow's pass uses (`apply_async`), each task recorded
    in `table` by the worker that takes it; each result's `get` gives up on a lost task.
    `lost` lists (task index, pid of the worker that died) in the order they were found."""

    def __init__(self, pool: Any, table: StartTable) -> None:
        self.pool, self.table = pool, table
        self.submitted = 0
        self.lost: list[tuple[int, int]] = []

    def apply_async(self, function: Callable[..., Any], args: tuple[Any, ...] = ()) -> _Watched:
        index = self.submitted
        self.submitted += 1
        return _Watched(self, index, self.pool.apply_async(run_taken, (index, function, *args)))


class _Watched:
    """One task's result: `get` as multiprocessing's, except that a task whose worker died
    returns None (and is listed in the pool's `lost`) instead of being waited for forever."""

    __slots__ = ("index", "result", "watch")

    def __init__(self, watch: WatchedPool, index: int, result: Any) -> None:
        self.watch, self.index, self.result = watch, index, result

    def get(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        result = self.result
        while True:
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            result.wait(max(left, 0.0))
            if result.ready():
                return result.get()
            pid = self.watch.table.pids[self.index]
            if pid and not _alive_child(pid):
                result.wait(GRACE_S)
                if result.ready():
                    return result.get()
                self.watch.lost.append((self.index, pid))
                return None
            if deadline is not None and time.monotonic() >= deadline:
                raise multiprocessing.TimeoutError


def _alive_child(pid: int) -> bool:
    # The pool's workers are this process's children: one that died is reaped by the pool (or
    # here) and is no longer among them.
    return any(child.pid == pid for child in multiprocessing.active_children())


__all__ = ["GRACE_S", "POLL_S", "StartTable", "WatchedPool", "run_taken", "tracking"]
