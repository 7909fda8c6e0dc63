"""The process pool of `run -p N`: a worker that dies costs its own operation, never the pass.

flow runs `-p N` on a `multiprocessing.Pool`, whose workers share one task queue behind one
lock. A worker that dies without answering (kill -9, the OOM killer, a crash in native code)
either held that lock (an idle worker waits for its next task holding it), and then no worker
gets another task and the pool's teardown waits for the lock forever; or it was running an
operation, whose result then never comes, and flow waits for it forever. Either way the pass
hangs, and a SLURM allocation idles until its time limit.

Here each worker has a pipe of its own. The pass sends one operation at a time to an idle
worker and watches every busy worker's pipe and process (`multiprocessing.connection.wait`).
A worker that dies without answering costs the operation it was running only: the operation
is listed in `lost`, its result is None, another worker takes the next operation, and the pass
goes on. The lost operation's attempt is recorded in its job as running in that process, so
aexp.state reads it as stale at once (its process is gone) and the next `run` resumes it.

The pool offers what flow's `_run_operations_in_parallel` uses of a `multiprocessing.Pool`:
`apply_async(function, args)` and results whose `get(timeout)` returns the function's value or
raises its exception (multiprocessing.TimeoutError after `timeout` seconds of waiting). Unlike
flow's pool, the first operation that raises (a preempted attempt's WorkerExit) is raised by
whichever `get` is waiting, so the pass stops at once and the other attempts are preempted
too, rather than running on until flow reaches that result in order; and nothing more starts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

# Seconds a worker may take to end once the pass is done with it (told to end, or signalled).
JOIN_S = 30.0
DAY_S = 86_400.0


class WorkerPool:
    """Up to `processes` worker processes, started as operations need them (module docstring).

    Use it as a context manager: leaving normally ends the workers once idle; leaving with an
    exception (a Ctrl-C, a preempted operation's WorkerExit) signals them with SIGTERM, as
    `multiprocessing.Pool.terminate` does, so that each records its attempt preempted.
    `lost` lists, in the order they were found, (operation index, how its worker died: one
    clause) for each operation whose worker died without answering.
    """

    def __init__(self, processes: int) -> None:
        self.size = max(1, processes)
        self.lost: list[tuple[int, str]] = []
        self._context = multiprocessing.get_context()
        self._tasks: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._next = 0  # the next operation to send
        self._results: dict[int, tuple[bool, Any]] = {}
        self._idle: list[_Worker] = []
        self._busy: dict[int, _Worker] = {}  # operation index -> the worker running it
        self._named = 0
        self._raised: int | None = None  # the first operation that raised
        self._ending: list[_Worker] = []  # workers let go while they end

    def apply_async(self, function: Callable[..., Any], args: tuple[Any, ...] = ()) -> Result:
        """Queue `function(*args)`; it is sent to a worker when one is free."""
        self._tasks.append((function, tuple(args)))
        return Result(self, len(self._tasks) - 1)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        workers = self._idle + list(self._busy.values())
        self._idle, self._busy = [], {}
        if exc_type is None:
            for worker in workers:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)  # end when idle
        else:
            for worker in workers:
                with contextlib.suppress(OSError):
                    worker.process.terminate()
        # Joined only once every worker is told or signalled: a preempted one still ending
        # (exit_soon) does not hold back the SIGTERM of the others.
        for worker in self._ending:
            worker.process.join(JOIN_S)
        for worker in workers:
            worker.process.join(JOIN_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._ending.clear()

    # -- the pass waits for one result; the others go on meanwhile ---------------------------
    def _wait_for(self, index: int, timeout: float | None) -> tuple[bool, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while index not in self._results:
            if self._raised is not None:  # raised at once, whichever result flow waits for:
                return self._results[self._raised]  # a preemption stops every attempt now
            self._send()
            watched: dict[Any, int] = {}
            for task, worker in self._busy.items():
                watched[worker.conn] = watched[worker.process.sentinel] = task
            # In slices of at most a day: poll(2) takes no more than 2**31 - 1 ms (~24.8 days).
            left = None if deadline is None else min(max(0.0, deadline - time.monotonic()), DAY_S)
            for ready in wait(list(watched), left):
                task = watched[ready]
                if task in self._busy:
                    self._answer(task)
            late = deadline is not None and time.monotonic() >= deadline
            if late and index not in self._results:
                raise multiprocessing.TimeoutError
        return self._results.pop(index)

    def _send(self) -> None:
        # Once an operation raised (a preempted attempt's WorkerExit, whose worker ends in a
        # moment), the pass ends: nothing more is started.
        while (
            self._raised is None
            and self._next < len(self._tasks)
            and (self._idle or len(self._busy) + len(self._idle) < self.size)
        ):
            worker = self._idle.pop() if self._idle else self._start()
            function, args = self._tasks[self._next]
            try:
                if not worker.process.is_alive():  # died idle (killed, or ended after a preemption)
                    raise BrokenPipeError
                worker.conn.send((self._next, function, args))
            except (BrokenPipeError, ConnectionError):
                self._drop(worker)
                continue
            self._busy[self._next] = worker
            self._next += 1

    def _answer(self, task: int) -> None:
        worker = self._busy[task]
        try:
            if worker.conn.poll():
                index, ok, value = worker.conn.recv()
                self._results[index] = (ok, value)
                del self._busy[task]
                if ok:
                    self._idle.append(worker)
                else:  # it may be ending (aexp.workflow.forked.exit_soon): not used again
                    self._raised = index if self._raised is None else self._raised
                    self._drop(worker, wait=False)
                return
        except (EOFError, OSError):
            pass  # its end of the pipe closed: the worker is gone, or about to be
        if worker.process.is_alive():
            return  # answered nothing yet, or is still ending: its sentinel says when it is gone
        del self._busy[task]
        self.lost.append((task, _death(worker.process)))
        self._results[task] = (True, None)
        self._drop(worker)

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        self._named += 1
        # A forked worker would also hold the pass's ends of every pipe made so far, its own
        # included: it closes them, so that it reads the end of its pipe when the pass is gone.
        inherited = [w.conn.fileno() for w in [*self._idle, *self._busy.values()]]
        inherited.append(ours.fileno())
        if self._context.get_start_method() != "fork":
            inherited = []
        process = self._context.Process(
            target=_serve,
            args=(theirs, inherited),
            name=f"PoolWorker-{self._named}",  # aexp.workflow.forked.in_pool_worker
            daemon=True,
        )
        process.start()
        theirs.close()
        return _Worker(ours, process)

    def _drop(self, worker: _Worker, wait: bool = True) -> None:
        worker.conn.close()
        if wait:
            worker.process.join(JOIN_S)
        else:  # joined when the pool ends
            self._ending.append(worker)


def cpu_count() -> int:
    """The processors this process may run on (`-p -1`): its CPU affinity, which SLURM sets to
    the allocation's cores, not the node's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _death(process: Any) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        import signal

        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
        if code == -signal.SIGKILL:
            how += " (kill -9, or the kernel's OOM killer)"
    else:
        how = f"exited with code {code}"
    return f"its worker process {process.pid} {how}"


def say_lost(lost: Sequence[tuple[str, Sequence[Any], str]]) -> int:
    """Name, once per job, the jobs of operations whose worker died (`lost`: each operation's
    name, its jobs, how its worker died), as their states read now; returns how many were
    left undone. A job whose attempt recorded its end before its worker died (killed a moment
    after it finished) lost nothing and is not named."""
    from aexp.schema import BOUND, RUNNING
    from aexp.state import UNBOUND, job_state
    from aexp.workflow.conditions import warn_once

    undone = 0
    for name, jobs, death in lost:
        for job in jobs:
            state = job_state(job)
            if state.state == RUNNING:
                then = "its attempt shows as stale; the next run takes it up from its journal"
            elif state.state in (UNBOUND, BOUND):
                then = "its attempt had not started, and the next run runs it"
            elif state.problem:
                then = state.problem
            else:
                continue  # ended and recorded: nothing was lost
            undone += 1
            warn_once(
                job, f"job {job.id}: operation {name} ended without a result: {death}; {then}."
            )
    return undone


class Result:
    """One queued operation's result, as `multiprocessing.pool.AsyncResult.get` gives it."""

    __slots__ = ("index", "pool")

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool, self.index = pool, index

    def get(self, timeout: float | None = None) -> Any:
        """The operation's return value (None when its worker died: it is in the pool's `lost`);
        raises what it raised, or multiprocessing.TimeoutError after `timeout` seconds."""
        ok, value = self.pool._wait_for(self.index, timeout)
        if not ok:
            raise value
        return value


class _Worker:
    __slots__ = ("conn", "process")

    def __init__(self, conn: Connection, process: Any) -> None:
        self.conn, self.process = conn, process


def _serve(conn: Connection, inherited: list[int]) -> None:
    """A worker: run each (index, function, args) the pass sends and answer (index, ok, value),
    until it sends None or is gone."""
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return  # the pass is gone, or a Ctrl-C reached the whole process group
        if message is None:
            return
        index, function, args = message
        try:
            answer = (index, True, function(*args))
        except KeyboardInterrupt:
            return  # the pass got the same Ctrl-C, and ends the pool
        except Exception as exc:
            answer = (index, False, exc)
        try:
            conn.send(answer)
        except (OSError, EOFError):
            return  # the pass is gone
        except Exception as exc:  # a value or an exception that cannot be pickled
            conn.send((index, False, RuntimeError(f"{type(exc).__name__}: {exc}")))


__all__ = ["JOIN_S", "Result", "WorkerPool", "cpu_count", "say_lost"]
