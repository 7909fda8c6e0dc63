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

import multiprocessing
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
