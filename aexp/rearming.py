"""Re-arming a failed run: the job's next `execute` continues the SAME run (same run id, the step
axis goes on), after the experiment or its environment was fixed. `aexp rerun` (aexp.rerun) is
the other way: a new run bound to the same job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aexp.agent.actor import current_actor, with_action
from aexp.binding import get_binding
from aexp.errors import BindingError
from aexp.jobdoc import update_doc
from aexp.jobs import project_root_of
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


def rearm(job: Any, actor: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Make a failed job's run eligible for `execute` again (same run id, step axis continues).

    `actor` (aexp.agent.actor; default: this process, tool "aexp.rearm") is recorded as
    `job.doc["actor"]["rearm"]` in the same update.
    """
    who = actor or current_actor("aexp.rearm", root=project_root_of(job))

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
        return {"tracker": rearmed, "status": "created", "actor": with_action(doc, "rearm", who)}

    return update_doc(job, change)["tracker"]


__all__ = ["check_rearmable", "rearm"]
