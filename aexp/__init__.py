"""aexp: bind every signac job to an experiment-tracker run.

    from aexp import bind_tracker, create_run, get_binding, run_lifecycle

    job = create_run(experiment_id="E018", hypothesis_id="H012",
                     statepoint={"condition": "full", "seed": 0})
    bind_tracker(job, "wandb", project="ecg-inquiry-eval", offline=True)  # or "noop"
    with run_lifecycle(job) as tracker:  # one execution attempt
        tracker.log({"loss": 0.1})
    assert get_binding(job)["state"] == "finished"  # the attempt closed the run itself

Importing aexp never imports wandb or signac-flow.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)

# Public names and the module that defines each. They are imported on first use (PEP 562), so
# `import aexp` costs almost nothing beyond the interpreter (docs/benchmarks.md): a compute
# node starting thousands of processes, or `status`, pays only for what it touches.
_EXPORTS = {
    "aexp.binding": ("bind_tracker", "get_binding", "update_binding"),
    "aexp.jobs": ("create_run", "find_job", "open_project"),
    "aexp.spec": ("run_spec",),
    "aexp.state": ("job_state",),
    "aexp.rearming": ("rearm",),
    "aexp.errors": (
        "AexpError",
        "BindingError",
        "JobBusyError",
        "JobNotFoundError",
        "ProjectNotFoundError",
        "SettingsError",
        "StatepointError",
        "TrackerInitError",
        "TrackerUsageError",
    ),
    "aexp.journal": ("Journal", "read_journal"),
    "aexp.lifecycle": ("finish_run", "run_lifecycle"),
    "aexp.settings": ("Settings", "load_settings"),
    "aexp.tracker": ("Preempted", "Tracker"),
    "aexp.sync": ("SyncResult", "find_offline_runs", "sync_offline_runs"),
    "aexp.trackers": (
        "ADAPTERS",
        "MlflowAdapter",
        "NoopAdapter",
        "RunHandle",
        "RunRecord",
        "TrackerAdapter",
        "WandbAdapter",
        "get_adapter",
    ),
}
_ORIGIN = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:  # what type checkers and IDEs see: the eager imports
    from typing import Any

    from aexp.binding import bind_tracker, get_binding, update_binding
    from aexp.errors import (
        AexpError,
        BindingError,
        JobBusyError,
        JobNotFoundError,
        ProjectNotFoundError,
        SettingsError,
        StatepointError,
        TrackerInitError,
        TrackerUsageError,
    )
    from aexp.jobs import create_run, find_job, open_project
    from aexp.journal import Journal, read_journal
    from aexp.lifecycle import finish_run, run_lifecycle
    from aexp.rearming import rearm
    from aexp.settings import Settings, load_settings
    from aexp.spec import run_spec
    from aexp.state import job_state
    from aexp.sync import SyncResult, find_offline_runs, sync_offline_runs
    from aexp.tracker import Preempted, Tracker
    from aexp.trackers import (
        ADAPTERS,
        MlflowAdapter,
        NoopAdapter,
        RunHandle,
        RunRecord,
        TrackerAdapter,
        WandbAdapter,
        get_adapter,
    )


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (and submodules, as `aexp.binding`)."""
    module = _ORIGIN.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_ORIGIN})


__version__ = "0.1.0"

__all__ = [
    "ADAPTERS",
    "AexpError",
    "BindingError",
    "JobBusyError",
    "JobNotFoundError",
    "Journal",
    "MlflowAdapter",
    "NoopAdapter",
    "Preempted",
    "ProjectNotFoundError",
    "RunHandle",
    "RunRecord",
    "Settings",
    "SettingsError",
    "StatepointError",
    "SyncResult",
    "Tracker",
    "TrackerAdapter",
    "TrackerInitError",
    "TrackerUsageError",
    "WandbAdapter",
    "__version__",
    "bind_tracker",
    "create_run",
    "find_job",
    "find_offline_runs",
    "finish_run",
    "get_adapter",
    "get_binding",
    "job_state",
    "load_settings",
    "open_project",
    "read_journal",
    "rearm",
    "run_lifecycle",
    "run_spec",
    "sync_offline_runs",
    "update_binding",
]
