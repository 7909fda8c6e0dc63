"""A project's jobs read straight from signac 2's layout on disk, without importing signac.

    root = find_root()                         the directory holding .signac/config
    for job_id, path in job_dirs(root): ...    workspace/<32 hex digits>/
    statepoint = read_statepoint(path)         workspace/<id>/signac_statepoint.json

Results views read every job of a sweep once; importing signac costs ~0.2 s and ~24 MB of a
process that otherwise needs ~0.1 s for 1,000 jobs, and its job objects add work per job that a
read-only pass does not need. The layout is signac 2's documented one (a project is the
directory with `.signac/config`, its jobs are `workspace/<id>/` with the state point in
`signac_statepoint.json`): the same files signac itself reads. Outside a project, signac is
asked (aexp.jobs.open_project), so the error is the one every other command gives.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

CONFIG = os.path.join(".signac", "config")
WORKSPACE = "workspace"
STATEPOINT_FILE = "signac_statepoint.json"
_HEX = frozenset("0123456789abcdef")


def find_root(path: str | os.PathLike | None = None) -> str:
    """The project directory containing `path` (default: the current directory): the nearest
    directory at or above it with `.signac/config`, as signac 2 looks for it.

    Raises ProjectNotFoundError (from signac's own search) when there is none.
    """
    start = os.path.abspath(path or os.getcwd())
    here = start
    while True:
        if os.path.isfile(os.path.join(here, CONFIG)):
            return here
        up = os.path.dirname(here)
        if up == here:
            break
        here = up
    from aexp.jobs import open_project  # signac's error (or its legacy-schema one) for it

    return str(open_project(start).path)


def root_of(project: Any) -> str:
    """A project's directory: `project` itself when it is a path, else its `.path` (a signac
    Project)."""
    if isinstance(project, str | os.PathLike):
        return os.fspath(project)
    return str(project.path)


def is_job_id(name: str) -> bool:
    """Whether a directory name is a signac job id (32 lower-case hex digits)."""
    return len(name) == 32 and _HEX.issuperset(name)


def job_dirs(root: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """(job id, job directory) of every job directory of the project, in job-id order; nothing
    when the workspace does not exist yet. Other entries (signac's own files) are left out."""
    workspace = os.path.join(root, WORKSPACE)
    try:
        names = os.listdir(workspace)
    except FileNotFoundError:
        return
    names.sort()
    for name in names:
        if is_job_id(name):
            yield name, f"{workspace}{os.sep}{name}"


def read_statepoint(path: str) -> dict[str, Any] | None:
    """The state point of the job directory `path`, or None when its file is missing, unreadable
    or not a JSON object (signac calls such a job corrupted)."""
    try:
        with open(f"{path}{os.sep}{STATEPOINT_FILE}", "rb") as fh:
            statepoint = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return statepoint if isinstance(statepoint, dict) else None


__all__ = ["find_root", "is_job_id", "job_dirs", "read_statepoint", "root_of"]
