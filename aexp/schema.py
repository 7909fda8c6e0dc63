"""What aexp keeps in a job document, field by field, and the check that it is intact.

docs/job-document.md is the prose of this table. Every reader of aexp's fields goes through
`document_problem` (via `aexp.binding.get_binding`), so a field of the wrong type (a string where a
number belongs, a null where an object belongs) makes the job `corrupt`, reported once, and never
written to by the workflow, instead of failing somewhere downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Values of job.doc["tracker"]["state"].
BOUND, RUNNING, PREEMPTED, COMPLETED, FAILED, FINISHED = (
    "bound",
    "running",
    "preempted",
    "completed",  # written by aexp before 0.2 only: an attempt ended, its run not closed yet
    "failed",
    "finished",
)
STATES = (BOUND, RUNNING, PREEMPTED, COMPLETED, FAILED, FINISHED)
# Values of job.doc["status"].
STATUSES = ("created", "running", "complete", "failed", "preempted")

_STR, _OPT_STR = (str,), (str, type(None))
_INT, _OPT_INT = (int,), (int, type(None))
_NUMBER = (int, float, type(None))
_BOOL, _DICT, _OPT_DICT, _LIST = (bool,), (dict,), (dict, type(None)), (list,)

# The binding, job.doc["tracker"]: field -> (types, required).
BINDING_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "backend": (_STR, True),
    "backends": (_DICT, False),  # absent in bindings written before several backends existed
    "run_id": (_STR, True),
    "url": (_OPT_STR, False),
    "project": (_STR, False),
    "group": (_STR, False),
    "offline": (_BOOL, False),
    "tags": (_LIST, False),
    "notes": (_OPT_STR, False),
    "state": (_STR, True),
    "attempts": (_INT, False),
    "last_step": (_INT, False),
    "exit_code": (_OPT_INT, False),
    "error": (_OPT_STR, False),
    "closed": (_BOOL, False),
    "summary": (_OPT_DICT, False),
    "bound_at": (_OPT_STR, False),
    "finished_at": (_OPT_STR, False),
    "synced_at": (_OPT_STR, False),
    "extra": (_DICT, False),
    "previous_runs": (_LIST, False),  # runs a rerun replaced (aexp.rerun), oldest first
    "started_by": (_OPT_DICT, False),  # who bound the run (aexp.agent.actor): its config says
}
# One run that a rerun replaced, job.doc["tracker"]["previous_runs"][i] (aexp.rerun).
PREVIOUS_RUN_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "run_id": (_STR, True),
    "state": (_STR, False),
    "exit_code": (_OPT_INT, False),
    "summary": (_OPT_DICT, False),
    "url": (_OPT_STR, False),
    "finished_at": (_OPT_STR, False),
    "backends": (_DICT, False),
}
# One backend's part, job.doc["tracker"]["backends"][name].
BACKEND_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "url": (_OPT_STR, False),
    "synced_at": (_OPT_STR, False),
    "error": (_OPT_STR, False),
    "options": (_DICT, False),
    "extra": (_DICT, False),
    "state": (_OPT_DICT, False),
}
# aexp's top-level keys of the document.
DOCUMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "limina": _OPT_DICT,
    "status": _OPT_STR,
    "attempt": _OPT_DICT,
    "started_at": _OPT_STR,
    "heartbeat_at": _OPT_STR,
    "ended_at": _OPT_STR,
    "wallclock_s": _NUMBER,
    "actor": _OPT_DICT,  # who created, launched, re-ran, re-armed the job (aexp.agent.actor)
}


def _kind(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
    names |= {dict: "an object", list: "a list", type(None): "null"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _wrong(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int to isinstance; a document's `attempts: true` is damage, not a count.
    if type(value) is bool and bool not in types:
        return True
    return not isinstance(value, types)


def _fields_problem(
    where: str, mapping: Mapping[str, Any], fields: Mapping[str, tuple[tuple[type, ...], bool]]
) -> str | None:
    for key, (types, required) in fields.items():
        if key not in mapping:
            if required:
                return f"{where} has no {key}"
            continue
        value = mapping[key]
        if _wrong(value, types):
            return f"{where}[{key!r}] is {value!r}, not {_kind(types)}"
    return None


def binding_problem(binding: Any, known_backends: Mapping[str, Any]) -> str | None:
    """What is wrong with a binding (job.doc["tracker"]), in words; None when it is intact."""
    where = "job.doc['tracker']"
    if not isinstance(binding, dict):
        return f"{where} is not an object"
    problem = _fields_problem(where, binding, BINDING_FIELDS)
    if problem:
        return problem
    if binding["backend"] not in known_backends:
        return f"{where} names an unknown backend {binding['backend']!r}"
    if not binding["run_id"]:
        return f"{where} has an empty run_id"
    if binding["state"] not in STATES:
        return f"{where} has an unknown state {binding['state']!r}"
    if binding.get("attempts", 0) < 0 or binding.get("last_step", -1) < -1:
        return f"{where} has a negative attempt count or step"
    for index, previous in enumerate(binding.get("previous_runs") or []):
        if not isinstance(previous, dict):
            return f"{where}['previous_runs'][{index}] is not an object"
        problem = _fields_problem(
            f"{where}['previous_runs'][{index}]", previous, PREVIOUS_RUN_FIELDS
        )
        if problem:
            return problem
    if any(not isinstance(tag, str) for tag in binding.get("tags") or ()):
        return f"{where}['tags'] holds {binding['tags']!r}, not only strings"
    for name, part in (binding.get("backends") or {}).items():
        if name not in known_backends:
            return f"{where}['backends'] names an unknown backend {name!r}"
        if not isinstance(part, dict):
            return f"{where}['backends'][{name!r}] is not an object"
        problem = _fields_problem(f"{where}['backends'][{name!r}]", part, BACKEND_FIELDS)
        if problem:
            return problem
    return None


def document_problem(doc: Mapping[str, Any]) -> str | None:
    """What is wrong with aexp's top-level keys of a job document; None when they are intact."""
    for key, types in DOCUMENT_FIELDS.items():
        if key in doc and _wrong(doc[key], types):
            return f"job.doc[{key!r}] is {doc[key]!r}, not {_kind(types)}"
    status = doc.get("status")
    if status is not None and status not in STATUSES:
        return f"job.doc['status'] is {status!r}, not one of {', '.join(STATUSES)}"
    return None


__all__ = [
    "BINDING_FIELDS",
    "BOUND",
    "COMPLETED",
    "DOCUMENT_FIELDS",
    "FAILED",
    "FINISHED",
    "PREEMPTED",
    "PREVIOUS_RUN_FIELDS",
    "RUNNING",
    "STATES",
    "STATUSES",
    "binding_problem",
    "document_problem",
]
