"""What project.py's operations, conditions and labels call: plain functions of a job.

    conditions.py   what `status` and `run` ask of a job (eligibility, labels), read from its
                    document at one parse per job
    operations.py   init_tracker, execute, finish: each contained to its job (a failure is one
                    line, never the end of the pass)

aexp never imports signac-flow: these are ordinary functions, usable from any workflow engine.
"""

from aexp.workflow.conditions import (
    backend_label,
    backend_label_of,
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

__all__ = [
    "adapter_from_settings",
    "adapters_from_settings",
    "backend_label",
    "backend_label_of",
    "can_execute",
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
    "snapshot",
    "stale_label",
    "state_label",
    "warn_once",
]
