"""What a command line names, found: the signac project (-C DIR), the jobs (ids, unique prefixes,
tracker run ids, `-` for stdin) and the tracker target (backend, project, entity). Also how
signac's errors are matched without importing signac.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aexp.cli.parsing import UsageError
from aexp.errors import AexpError, JobNotFoundError, TrackerInitError
from aexp.trackers import ADAPTERS

if TYPE_CHECKING:
    from aexp.settings import Settings
    from aexp.trackers import TrackerAdapter


def _signac_error(name: str) -> tuple[type[Exception], ...]:
    """`signac.errors.<name>` for an except clause, or () (matches nothing) if signac was never
    imported, in which case none of its errors can have been raised. An except clause evaluates
    this only when an exception reaches it, so commands that do not need signac (`sync-offline`)
    never pay for importing it (~40 ms)."""
    errors = sys.modules.get("signac.errors")
    return () if errors is None else (getattr(errors, name),)


def _project_dir(args: argparse.Namespace) -> str | None:
    where = args.project_dir
    if where is not None and not os.path.isdir(where):
        raise UsageError(f"-C {where}: no such directory.")
    return where


def _project(args: argparse.Namespace) -> Any:
    """The signac project containing -C DIR (default: the current directory)."""
    where = _project_dir(args)
    # signac logs what it then raises; main's error says it once, in aexp's words.
    import logging

    from aexp.jobs import open_project

    logging.getLogger("signac").addHandler(logging.NullHandler())
    try:
        return open_project(where)
    except _signac_error("Error") as exc:
        first = str(exc).strip().splitlines()[0].rstrip(".:")
        raise AexpError(f"cannot open the signac project: {first}.") from None


def _jobs(project: Any, idents: Iterable[str], *, stdin: bool = True) -> list[Any]:
    """Resolve job ids, unique prefixes or tracker run ids (`-`: read them from stdin)."""
    from aexp.jobs import find_job

    names: list[str] = []
    for ident in idents:
        if ident == "-" and stdin:
            names.extend(sys.stdin.read().split())
        else:
            names.append(ident)
    if not names:
        raise UsageError("no job ids given (none were read from stdin).")
    if not os.path.isdir(project.workspace):
        raise JobNotFoundError(f"no job or tracker run with id {names[0]!r} in {project.path}.")
    jobs: dict[str, Any] = {}
    for name in names:
        job = find_job(project, name)
        jobs.setdefault(job.id, job)
    return list(jobs.values())


def _check_backend(name: str) -> str:
    if name not in ADAPTERS:
        known = ", ".join(sorted(ADAPTERS))
        raise TrackerInitError(f"unknown tracker backend {name!r}; known backends: {known}.")
    return name


def _adapter(
    backend: str, entity: str | None, workspace: str, settings: Settings | None = None
) -> TrackerAdapter:
    from aexp.trackers import get_adapter

    if backend == "wandb":
        return get_adapter("wandb", entity=entity)
    if backend == "noop":
        return get_adapter("noop", workspace=workspace)
    if settings is not None:  # made as signac.rc configures it (MLflow: its tracking URI)
        _check_backend(backend)
        return ADAPTERS[backend].from_settings(settings, os.path.dirname(workspace))
    return get_adapter(backend)


def _tracker_target(args: argparse.Namespace, settings: Settings) -> tuple[str, str, str | None]:
    """Backend, tracker project and entity: the flags where given, else signac.rc's values."""
    from aexp.validate import validate_project_name

    backend = _check_backend(args.backend or settings.backend)
    if args.project is not None:
        validate_project_name(args.project, where="--project")
    entity = settings.entity if args.entity is None else (args.entity or None)
    return backend, args.project or settings.project, entity
