"""Checks before a pass: what would fail every job the same way is said once, up front.

    check_backends_installed(backends)   every backend's SDK can be imported (else one sentence
                                         with the install command: TrackerInitError)
    check_writable(workspace)            the workspace takes a write (else WorkspaceError:
                                         read-only, full, over quota)
    usable_job_dirs(workspace, names)    the job directories signac lists, without the ones
                                         that are not jobs (each reported once per process)
    quiet_statepoint_errors()            signac logs a state point it cannot read besides
                                         raising; aexp says it once, in its own words

A read-only workspace or a missing wandb package is one problem, not one line per job: project.py
runs these before `run` starts any operation.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterable, Iterator

from aexp.errors import TrackerInitError, WorkspaceError
from aexp.jobs import jobs_seen, known_job_dir, stray_dir_message
from aexp.workflow.conditions import say

# The Python package each backend's adapter imports, by backend name. A backend not listed here
# needs none (noop) or is checked by its adapter when it is constructed.
SDK_MODULES = {"wandb": "wandb", "mlflow": "mlflow"}

_reported: set[str] = set()


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a module without a spec
        return False


def check_backends_installed(backends: Iterable[str]) -> None:
    """Raise TrackerInitError naming the first backend whose SDK is not installed.

    Looks the package up without importing it (importing wandb costs ~0.35 s).
    """
    for name in backends:
        module = SDK_MODULES.get(name)
        if module and not _installed(module):
            raise TrackerInitError(
                f"[tracker] backend = {name} needs the {module} package, which is not installed; "
                f"install it with: pip install 'agentic-experiments[{name}]' (or use backend = "
                "noop in signac.rc); nothing was run."
            )


def check_writable(workspace: str) -> None:
    """Raise WorkspaceError if a small file cannot be created, written and removed in
    `workspace` (a read-only mount, a full disk, a quota). An absent workspace is fine: signac
    makes it with the first job."""
    if not os.path.isdir(workspace):
        return
    probe = os.path.join(workspace, f".aexp-probe-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"aexp\n")  # a block: a full disk refuses it, an empty file may pass
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise WorkspaceError(
            f"the workspace {workspace} cannot be written ({exc.strerror or exc}); nothing was "
            "run: make it writable (or free space) and run again."
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def usable_job_dirs(workspace: str, names: Iterable[str]) -> Iterator[str]:
    """The names among `names` (directories of `workspace` named like job ids) that hold a job.

    The others (no state point file, as older aexp left them: aexp.jobs.is_job_dir) are reported
    on stderr once per process, with what to do, and left out: signac would fail on them and end
    the whole command.
    """
    # flow lists the workspace several times per command: each directory is checked once per
    # process (a job's state point file does not go away), which keeps `status` at one stat
    # per job (~2 us) whatever flow does.
    known = jobs_seen(workspace)
    for name in names:
        if name in known or known_job_dir(workspace, name):
            yield name
        else:
            report_stray(workspace, name)


class _StatepointErrorFilter(logging.Filter):
    """Drops signac's own log line about a state point it cannot read: aexp reports that job
    itself, in one line that says what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Error while trying to access state point file")


def quiet_statepoint_errors() -> None:
    """Keep signac from logging, besides raising, each state point it cannot read (idempotent)."""
    log = logging.getLogger("signac.project")
    if not any(isinstance(f, _StatepointErrorFilter) for f in log.filters):
        log.addFilter(_StatepointErrorFilter())


def report_stray(workspace: str, name: str) -> None:
    """Say once per process that `workspace/name` is not a job (aexp.jobs.stray_dir_message)."""
    if name not in _reported:
        _reported.add(name)
        say(f"warning: {stray_dir_message(workspace, name)}")


__all__ = [
    "SDK_MODULES",
    "check_backends_installed",
    "check_writable",
    "quiet_statepoint_errors",
    "report_stray",
    "usable_job_dirs",
]
