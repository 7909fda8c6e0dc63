"""aexp: bind every signac job to an experiment-tracker run.

    from aexp import create_run, bind_tracker, WandbAdapter, run_lifecycle

    job = create_run(experiment_id="E018", hypothesis_id="H012",
                     statepoint={"condition": "full", "seed": 0})
    bind_tracker(job, WandbAdapter(), project="ecg-inquiry-eval", offline=True)
    with run_lifecycle(job) as run:
        run.log({"loss": 0.1})

Importing aexp never imports wandb or signac-flow.
"""

from aexp.binding import (
    bind_tracker,
    create_run,
    find_job,
    get_binding,
    open_project,
    rearm,
    run_spec,
    update_binding,
)
from aexp.errors import (
    AexpError,
    BindingError,
    JobNotFoundError,
    ProjectNotFoundError,
    SettingsError,
    TrackerInitError,
    TrackerUsageError,
)
from aexp.lifecycle import Preempted, Tracker, finish_run, run_lifecycle
from aexp.settings import Settings, load_settings
from aexp.trackers import (
    ADAPTERS,
    NoopAdapter,
    RunHandle,
    RunRecord,
    TrackerAdapter,
    WandbAdapter,
    get_adapter,
)

__version__ = "0.1.0"

__all__ = [
    "ADAPTERS",
    "AexpError",
    "BindingError",
    "JobNotFoundError",
    "NoopAdapter",
    "Preempted",
    "ProjectNotFoundError",
    "RunHandle",
    "RunRecord",
    "Settings",
    "SettingsError",
    "Tracker",
    "TrackerAdapter",
    "TrackerInitError",
    "TrackerUsageError",
    "WandbAdapter",
    "__version__",
    "bind_tracker",
    "create_run",
    "find_job",
    "finish_run",
    "get_adapter",
    "get_binding",
    "load_settings",
    "open_project",
    "rearm",
    "run_lifecycle",
    "run_spec",
    "update_binding",
]
