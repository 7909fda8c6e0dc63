"""What project.py's operations, conditions and labels call: plain functions of a job; and the
FlowProject project.py subclasses.

    project.py      WorkflowProject (flow's machinery: checks, the pass summary, submission) and
                    `main`: the one module of aexp that imports signac-flow
    conditions.py   what `status` and `run` ask of a job (eligibility, labels), read from its
                    state (aexp.state) at one parse per job
    operations.py   init_tracker, execute, finish: each contained to its job (a failure is one
                    line, never the end of the pass)
    preflight.py    what is checked once before a pass (backend SDKs installed, the workspace
                    writable)
    report.py       the pass summary: what changed in the job documents, in two lines
    forked.py       the project as a process pool forked from this process finds it (run -p N)
    workerpool.py   run -p N's process pool: a worker that dies costs its own operation only
    walltime.py     whether a SLURM submission leaves time to work before its warning signal

Everything but project.py is ordinary functions, usable from any workflow engine; importing
`aexp.workflow` imports no flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aexp.lazy import lazy_names

if TYPE_CHECKING:
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
        needs_binding,
        needs_finish,
        needs_sync,
        needs_sync_of,
        outside_allocation,
        snapshot,
        stale_label,
        stalled_label,
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
    from aexp.workflow.preflight import check_backends_installed, check_writable
    from aexp.workflow.report import PassReport, PassWatch
    from aexp.workflow.walltime import check_working_window, time_flag

# Names are imported on first use (PEP 562): `status` and `--help` load the conditions, not the
# operations, the pass report or the walltime check (docs/benchmarks.md, benchmark 2).
_SUBMODULES = ("forked",)
_WHERE = {
    "PassReport": "aexp.workflow.report",
    "PassWatch": "aexp.workflow.report",
    "adapter_from_settings": "aexp.workflow.operations",
    "adapters_from_settings": "aexp.workflow.operations",
    "backend_label": "aexp.workflow.conditions",
    "backend_label_of": "aexp.workflow.conditions",
    "can_execute": "aexp.workflow.conditions",
    "check_backends_installed": "aexp.workflow.preflight",
    "check_working_window": "aexp.workflow.walltime",
    "check_writable": "aexp.workflow.preflight",
    "contained": "aexp.workflow.operations",
    "execute": "aexp.workflow.operations",
    "execute_ended": "aexp.workflow.conditions",
    "finish": "aexp.workflow.operations",
    "init_tracker": "aexp.workflow.operations",
    "is_bound": "aexp.workflow.conditions",
    "is_corrupt": "aexp.workflow.conditions",
    "is_finished": "aexp.workflow.conditions",
    "is_synced": "aexp.workflow.conditions",
    "is_unbound": "aexp.workflow.conditions",
    "needs_binding": "aexp.workflow.conditions",
    "needs_finish": "aexp.workflow.conditions",
    "needs_sync": "aexp.workflow.conditions",
    "needs_sync_of": "aexp.workflow.conditions",
    "outside_allocation": "aexp.workflow.conditions",
    "snapshot": "aexp.workflow.conditions",
    "stale_label": "aexp.workflow.conditions",
    "stalled_label": "aexp.workflow.conditions",
    "state_label": "aexp.workflow.conditions",
    "time_flag": "aexp.workflow.walltime",
    "warn_once": "aexp.workflow.conditions",
}


__getattr__, __dir__ = lazy_names(globals(), _WHERE, _SUBMODULES)

__all__ = [
    "PassReport",
    "PassWatch",
    "adapter_from_settings",
    "adapters_from_settings",
    "backend_label",
    "backend_label_of",
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
    "needs_binding",
    "needs_finish",
    "needs_sync",
    "needs_sync_of",
    "outside_allocation",
    "snapshot",
    "stale_label",
    "stalled_label",
    "state_label",
    "time_flag",
    "warn_once",
]
