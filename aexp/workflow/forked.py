"""The project object of this process, for the workers of a process pool forked from it.

flow's `run -p N` pickles the project once per operation (cloudpickle), and every pool worker
unpickles it again for each operation it runs. project.py runs as `__main__`, so its class,
conditions and operations are pickled by value: 43 KB and ~3 ms per operation here, two
operations per job (init_tracker, execute), ~6 ms of every job's time in a worker. Workers
forked from this process already hold the very same object: `remember` it, and let its pickle
be a lookup (`by_id`: the object's id, which a fork keeps) instead of a copy; such a pickle means
nothing in another process. Only where the pool forks (`fork_reduces`): a spawned worker starts
empty and needs the copy.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

_projects: dict[int, Any] = {}  # id -> project; kept alive for the life of the process


def remember(project: Any) -> int:
    """Keep `project` for the workers forked from this process; returns the key for `by_id`."""
    _projects[id(project)] = project
    return id(project)


def by_id(key: int) -> Any:
    """The project `remember`ed under `key` in this process (or in the process it forked from).

    Raises LookupError when there is none (a process that was not forked from the one that
    pickled it).
    """
    try:
        return _projects[key]
    except KeyError:
        raise LookupError(
            "the project was pickled in a process this one was not forked from"
        ) from None


def fork_reduces() -> bool:
    """True when a process pool made now forks this process (Linux's default start method),
    so a worker finds the remembered project by path."""
    return multiprocessing.get_start_method() == "fork"


class WorkerExit(Exception):
    """An operation in a pool worker ended with an exit code (a preempted attempt: 128 + signal).

    Raised in the worker instead of the SystemExit a preemption raises: SystemExit would end the
    pool worker process, its task would never report back, and `run -p N` would wait for it
    forever. As an Exception it reaches the parent through the pool; `run` then stops the pool
    (the other attempts are preempted too, as with Ctrl-C) and exits with `code`.
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def exit_soon(code: int, delay: float = 0.5) -> None:
    """End this pool worker with `code` `delay` seconds from now: time to send its task's
    result (WorkerExit) to the parent first. A preempted worker must still end, as the SystemExit
    it replaced would have ended it: the pool's terminate() signals each worker once and then
    waits for it."""
    timer = threading.Timer(delay, os._exit, (code,))
    timer.daemon = True
    timer.start()


def in_pool_worker() -> bool:
    """True in a worker process of `run -p N`'s pool (aexp.workflow.workerpool names its
    workers as multiprocessing.Pool does)."""
    process = multiprocessing.current_process()
    return bool(
        process.daemon
        and multiprocessing.parent_process() is not None
        and process.name.split("-")[0].endswith("PoolWorker")
    )


def leave_if_orphaned() -> None:
    """End this pool worker quietly when the pass that forked it is gone (killed with -9): its
    operation is recorded in the job already, nobody is left to take the result, and sending it
    would only print a BrokenPipeError traceback on the user's terminal. Anywhere else: nothing."""
    if not in_pool_worker():
        return
    # Not `parent.is_alive()`: its sentinel is a pipe the sibling workers forked later hold
    # open too, so it reads alive while any of them lives. A dead parent's children are
    # re-parented: the parent pid this process sees is no longer the one that forked it.
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def _stop(signum: int, frame: Any) -> None:
    raise WorkerExit(128 + signum)


def _default_in_worker() -> None:
    # A pool worker forked while `_stop` is the handler ends as by default on these signals
    # outside an attempt (an attempt installs its own and restores this): by the kernel, not
    # through a Python handler. One that lands just as the worker blocks on the pool's queue
    # lock (which `Pool.terminate` holds while it signals the workers) would never be run, and
    # the pass would wait for that worker forever.
    for sig in _STOP_SIGNALS:
        if signal.getsignal(sig) is _stop:
            signal.signal(sig, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_in_worker)


@contextlib.contextmanager
def signals_stop_pool(parallel: bool) -> Iterator[None]:
    """In the parent of `run -p N` (`parallel`): SIGTERM and SIGUSR1 raise WorkerExit(128 +
    signal), so leaving flow's pool terminates its workers (each records its attempt preempted)
    and `run` exits with that code. By default they ended the parent alone, at once and
    silently, and its orphaned workers ran on, then printed BrokenPipeError tracebacks.
    A forked worker that gets one outside an attempt ends as by default."""
    if not parallel:
        yield
        return
    previous = {sig: signal.signal(sig, _stop) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
