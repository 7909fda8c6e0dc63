"""Checks before a pass: what would fail every job the same way is said once, up front.

    check_backends_installed(backends)   every backend's SDK can be imported (else one sentence
                                         with the install command: TrackerInitError)
    check_writable(workspace)            the workspace takes a write (else WorkspaceError:
                                         read-only, full, over quota)

A read-only workspace or a missing wandb package is one problem, not one line per job: project.py
runs these before `run` starts any operation.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable

from aexp.door import storage_problem
from aexp.errors import TrackerInitError, WorkspaceError
from aexp.mounts import probe_write

# The Python package each backend's adapter imports, by backend name. A backend not listed here
# needs none (noop) or is checked by its adapter when it is constructed.
SDK_MODULES = {"wandb": "wandb", "mlflow": "mlflow"}


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


def check_writable(workspace: str, outcome: str = "nothing was run") -> None:
    """Raise WorkspaceError if a small file cannot be created, written and removed in
    `workspace` (a read-only mount, a full disk, a quota); its sentence ends with `outcome`
    (what the refusal means: by default, for a pass about to begin). An absent workspace is
    fine: signac makes it with the first job."""
    if not os.path.isdir(workspace):
        return
    try:
        probe_write(workspace)
    except OSError as exc:
        raise WorkspaceError(storage_problem(exc, workspace, outcome)) from None


__all__ = ["SDK_MODULES", "check_backends_installed", "check_writable"]
