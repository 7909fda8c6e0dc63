"""Re-arming a failed run: the job's next `execute` continues the SAME run (same run id, the step
axis goes on), after the experiment or its environment was fixed. `aexp rerun` (aexp.rerun) is
the other way: a new run bound to the same job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aexp.binding import get_binding
from aexp.errors import BindingError
from aexp.jobdoc import update_doc
from aexp.schema import BOUND, FAILED


def check_rearmable(job: Any, doc: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The job's binding if its run failed (and can be re-armed), else BindingError saying why."""
    binding = get_binding(job, doc)
    if binding is None:
        raise BindingError(f"job {job.id} is not bound to a tracker run; nothing to re-arm.")
    if binding["state"] != FAILED:
        raise BindingError(
            f"job {job.id} is {binding['state']}, not failed; only failed runs are re-armed."
        )
    return binding


def rearm(job: Any) -> dict[str, Any]:
    """Make a failed job's run eligible for `execute` again (same run id, step axis continues)."""

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        binding = check_rearmable(job, doc)
        rearmed = {
            **binding,
            "state": BOUND,
            "exit_code": None,
            "error": None,
            "finished_at": None,
            "synced_at": None,  # the next attempt adds to the run: it must be synced again
        }
        return {"tracker": rearmed, "status": "created"}

    return update_doc(job, change)["tracker"]


__all__ = ["check_rearmable", "rearm"]
