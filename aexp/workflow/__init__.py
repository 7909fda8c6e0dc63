"""What project.py's operations, conditions and labels call: plain functions of a job.

    conditions.py   what `status` and `run` ask of a job (eligibility, labels), read from its
                    document at one parse per job
    operations.py   init_tracker, execute, finish: each contained to its job (a failure is one
                    line, never the end of the pass)
    preflight.py    what is checked once before a pass (backend SDKs installed, the workspace
                    writable) and the workspace directories that are not jobs
    report.py       the pass summary: what changed in the job documents, in two lines
    walltime.py     whether a SLURM submission leaves time to work before its warning signal

aexp never imports signac-flow: these are ordinary functions, usable from any workflow engine.
"""

from aexp.workflow.conditions import (
    backend_label,
    backend_label_of,
    binds_in_execute,
    can_execute,
    execute_ended,
    is_bound,
    is_corrupt,
    is_finished,
    is_synced,
    is_unbound,
    needs_finish,
    needs_sync,
    needs_sync_of,
    outside_allocation,
    snapshot,
    stale_label,
    state_label,
    warn_once,
)
from aexp.workflow.operations import (
    adapter_from_settings,
    adapters_from_settings,
    contained,
    execute,
    finish,
    init_tracker,
)
from aexp.workflow.preflight import (
    check_backends_installed,
    check_writable,
    quiet_statepoint_errors,
    usable_job_dirs,
)
from aexp.workflow.report import PassReport, PassWatch
from aexp.workflow.walltime import check_working_window, time_flag

__all__ = [
    "PassReport",
    "PassWatch",
    "adapter_from_settings",
    "adapters_from_settings",
    "backend_label",
    "backend_label_of",
    "binds_in_execute",
    "can_execute",
    "check_backends_installed",
    "check_working_window",
    "check_writable",
    "contained",
    "execute",
    "execute_ended",
    "finish",
    "init_tracker",
    "is_bound",
    "is_corrupt",
    "is_finished",
    "is_synced",
    "is_unbound",
    "needs_finish",
    "needs_sync",
    "needs_sync_of",
    "outside_allocation",
    "quiet_statepoint_errors",
    "snapshot",
    "stale_label",
    "state_label",
    "time_flag",
    "usable_job_dirs",
    "warn_once",
]
