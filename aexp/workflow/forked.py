"""The project object of this process, for the workers of a process pool forked from it.

flow's `run -p N` pickles the project once per operation (cloudpickle), and every pool worker
unpickles it again for each operation it runs. project.py runs as `__main__`, so its class,
conditions and operations are pickled by value: 43 KB and ~3 ms per operation here, two
operations per job (init_tracker, execute), ~6 ms of every job's time in a worker. Workers
forked from this process already hold the very same object: `remember` it, and let its pickle
be a lookup by path (`by_path`) instead of a copy. Only where the pool forks (`fork_reduces`):
a spawned worker starts empty and needs the copy.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

_projects: dict[str, Any] = {}


def remember(project: Any) -> None:
    """Note `project` (anything with a `.path`) as this process's project for its path."""
    _projects[project.path] = project


def by_path(path: str) -> Any:
    """The project `remember`ed for `path` in this process (inherited by a forked worker).

    Raises LookupError when there is none (a worker that was not forked from the process).
    """
    try:
        return _projects[path]
    except KeyError:
        raise LookupError(f"no project at {path} in this process; it was not forked") from None


def fork_reduces() -> bool:
    """True when a process pool made now forks this process (Linux's default start method),
    so a worker finds the remembered project by path."""
    return multiprocessing.get_start_method() == "fork"
