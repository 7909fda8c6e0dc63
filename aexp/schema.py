"""What aexp keeps in a job document, field by field, and the check that it is intact.

docs/job-document.md is the prose of these tables. Every reader of aexp's fields goes through
`document_problem` and `binding_problem` (via `aexp.binding.get_binding`), so a field of the wrong
type (a string where a number belongs, a null where an object belongs, a list where an object
belongs) makes the job `corrupt`, reported once, and never written to by the workflow or the sync,
instead of failing somewhere downstream (a traceback that stops every other job).

The tables hold every field that the workflow's conditions and labels, the attempt, the sync
(`aexp sync-offline`, the `sync_offline` operation), `aexp rerun` and `aexp remove` read:

    DOCUMENT_FIELDS        job.doc[...]                      the attempt's top-level keys
    ATTEMPT_FIELDS         job.doc["attempt"][...]           where the attempt runs (is_stale)
    BINDING_FIELDS         job.doc["tracker"][...]           the binding
    PREVIOUS_RUN_FIELDS    tracker.previous_runs[i][...]     runs a rerun replaced
    PREVIOUS_PART_FIELDS   tracker.previous_runs[i].backends[name][...]
    BACKEND_FIELDS         tracker.backends[name][...]       one backend's part
    OPTION_FIELDS          tracker.backends[name].options / .extra, per backend
    STATE_FIELDS           tracker.backends[name].state, per backend (what its sync keeps)
    FRAGMENT_FIELDS        a W&B fragment's record: tracker.backends.wandb.state.fragments[name]
                           and tracker.backends.wandb.inflight.fragments[name]
    INFLIGHT_FIELDS        tracker.backends[name].inflight   an upload in flight (aexp/sync)
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
_SECONDS = (int, float)
Fields = dict[str, tuple[tuple[type, ...], bool]]

# The binding, job.doc["tracker"]: field -> (types, required).
BINDING_FIELDS: Fields = {
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
PREVIOUS_RUN_FIELDS: Fields = {
    "run_id": (_STR, True),
    "backend": (_STR, False),
    "state": (_STR, False),
    "exit_code": (_OPT_INT, False),
    "attempts": (_INT, False),
    "last_step": (_INT, False),
    "summary": (_OPT_DICT, False),
    "url": (_OPT_STR, False),
    "bound_at": (_OPT_STR, False),
    "finished_at": (_OPT_STR, False),
    "synced_at": (_OPT_STR, False),
    "replaced_at": (_OPT_STR, False),
    "backends": (_DICT, False),
}
# What a previous run keeps of each backend: previous_runs[i]["backends"][name].
PREVIOUS_PART_FIELDS: Fields = {
    "url": (_OPT_STR, False),
    "synced_at": (_OPT_STR, False),
}
# One backend's part, job.doc["tracker"]["backends"][name].
BACKEND_FIELDS: Fields = {
    "url": (_OPT_STR, False),
    "synced_at": (_OPT_STR, False),
    "error": (_OPT_STR, False),
    "options": (_DICT, False),
    "extra": (_DICT, False),
    "state": (_OPT_DICT, False),
    "inflight": (_OPT_DICT, False),  # an upload the sync started and has not settled yet
}
# The fields of a backend's `options` and `extra` that aexp reads, per backend (W&B: the entity
# its runs go to, and the id of a run W&B named itself). Other keys are the backend's own.
OPTION_FIELDS: dict[str, Fields] = {
    "wandb": {"entity": (_OPT_STR, False), "id": (_OPT_STR, False)},
}
# A W&B fragment as the sync records it: tracker.backends.wandb.state.fragments[<folder name>]
# (uploaded) and tracker.backends.wandb.inflight.fragments[<folder name>] (being uploaded).
FRAGMENT_FIELDS: Fields = {
    "first": (_OPT_INT, True),  # its first and last step (null: it holds no row)
    "last": (_OPT_INT, True),
    "rows": (_INT, True),
    "start": (_SECONDS, False),  # its start, seconds since the epoch
    "artifacts": (_LIST, False),  # the names of the artifacts it logged (strings)
    "ended": (_BOOL, False),  # false: the server lacks its end (exit code, summary)
}
# What a backend's sync keeps between passes, tracker.backends[name].state, per backend: the
# fields aexp (or the backend's adapter) reads back. A backend not listed keeps a free object.
STATE_FIELDS: dict[str, Fields] = {
    "wandb": {"fragments": (_DICT, False)},
    "mlflow": {
        "mlflow_run_id": (_STR, False),
        "experiment_id": (_STR, False),
        "tracking_uri": (_STR, False),
        "rows": (_INT, False),
        "status": (_STR, False),
        "missing_artifacts": (_LIST, False),
    },
}
# An upload in flight, tracker.backends[name].inflight: written before the upload starts and
# cleared once its outcome is recorded, so an upload ended by anything (a signal, a full disk,
# kill -9) is settled from the server's own account before anything is sent again (aexp/sync).
INFLIGHT_FIELDS: Fields = {
    "since": (_STR, True),  # when it started (ISO-8601 UTC)
    "host": (_STR, False),  # the process that started it
    "pid": (_INT, False),
    "fragments": (_DICT, False),  # W&B: {folder name: FRAGMENT_FIELDS} being uploaded
    "rows": (_INT, False),  # a replayed backend: the journal's history rows being replayed
    "artifacts": (_INT, False),  # ... and its artifacts
}
# Where the attempt runs, job.doc["attempt"] (read to tell a dead attempt from a live one).
ATTEMPT_FIELDS: Fields = {
    "host": (_OPT_STR, False),
    "pid": (_OPT_INT, False),
    "slurm_job_id": (_OPT_STR, False),
    "slurm_restart_count": (_OPT_STR, False),
    "pass_id": (_OPT_STR, False),  # the `run` pass that started it (aexp.state.begin_pass)
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
    "peak_rss_mb": _NUMBER,
    "actor": _OPT_DICT,  # who created, launched, re-ran, re-armed the job (aexp.agent.actor)
}


def _kind(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
    if float in types and int in types:
        names[int] = "a number"
    names |= {dict: "an object", list: "a list", type(None): "null"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _wrong(value: Any, types: tuple[type, ...]) -> bool:
    kind = type(value)
    if kind in types:  # what a parsed document holds: its exact type (the hot path)
        return False
    # bool is an int to isinstance; a document's `attempts: true` is damage, not a count.
    return kind is bool or not isinstance(value, types)


def _fields_problem(where: str, mapping: Any, fields: Fields) -> str | None:
    if not isinstance(mapping, dict):
        return f"{where} is {mapping!r}, not an object"
    for key, (types, required) in fields.items():
        if key not in mapping:
            if required:
                return f"{where} has no {key}"
            continue
        value = mapping[key]
        if type(value) not in types and _wrong(value, types):  # the exact type: no call
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
        problem = _previous_problem(f"{where}['previous_runs'][{index}]", previous)
        if problem:
            return problem
    if any(not isinstance(tag, str) for tag in binding.get("tags") or ()):
        return f"{where}['tags'] holds {binding['tags']!r}, not only strings"
    for name, part in (binding.get("backends") or {}).items():
        if name not in known_backends:
            return f"{where}['backends'] names an unknown backend {name!r}"
        problem = part_problem(f"{where}['backends'][{name!r}]", name, part)
        if problem:
            return problem
    if "backends" not in binding:  # an older binding: its `extra` is the primary's
        problem = _fields_problem(
            f"{where}['extra']",
            binding.get("extra") or {},
            OPTION_FIELDS.get(binding["backend"], {}),
        )
        if problem:
            return problem
    return None


def _previous_problem(where: str, previous: Any) -> str | None:
    problem = _fields_problem(where, previous, PREVIOUS_RUN_FIELDS)
    if problem:
        return problem
    for name, part in (previous.get("backends") or {}).items():
        problem = _fields_problem(f"{where}['backends'][{name!r}]", part, PREVIOUS_PART_FIELDS)
        if problem:
            return problem
    return None


def part_problem(where: str, name: str, part: Any) -> str | None:
    """What is wrong with backend `name`'s part of a binding (`where` names it), or None."""
    problem = _fields_problem(where, part, BACKEND_FIELDS)
    if problem:
        return problem
    for key in ("options", "extra"):
        problem = _fields_problem(
            f"{where}[{key!r}]", part.get(key) or {}, OPTION_FIELDS.get(name, {})
        )
        if problem:
            return problem
    state = part.get("state") or {}
    problem = _fields_problem(f"{where}['state']", state, STATE_FIELDS.get(name, {}))
    if problem:
        return problem
    problem = _fragments_problem(f"{where}['state']['fragments']", state.get("fragments") or {})
    if problem:
        return problem
    inflight = part.get("inflight")
    if inflight is not None:
        problem = _fields_problem(f"{where}['inflight']", inflight, INFLIGHT_FIELDS)
        if problem:
            return problem
        return _fragments_problem(
            f"{where}['inflight']['fragments']", inflight.get("fragments") or {}
        )
    return None


def _fragments_problem(where: str, fragments: Mapping[str, Any]) -> str | None:
    for folder, record in fragments.items():
        problem = _fields_problem(f"{where}[{folder!r}]", record, FRAGMENT_FIELDS)
        if problem:
            return problem
        if any(not isinstance(n, str) for n in record.get("artifacts") or ()):
            return (
                f"{where}[{folder!r}]['artifacts'] holds {record['artifacts']!r}, not only strings"
            )
        if record["rows"] < 0 or (record["first"] is None) != (record["last"] is None):
            return f"{where}[{folder!r}] is not a fragment's record: {record!r}"
    return None


def document_problem(doc: Mapping[str, Any]) -> str | None:
    """What is wrong with aexp's top-level keys of a job document; None when they are intact."""
    for key, types in DOCUMENT_FIELDS.items():
        if key in doc and type(doc[key]) not in types and _wrong(doc[key], types):
            return f"job.doc[{key!r}] is {doc[key]!r}, not {_kind(types)}"
    if doc.get("attempt"):
        problem = _fields_problem("job.doc['attempt']", doc["attempt"], ATTEMPT_FIELDS)
        if problem:
            return problem
    status = doc.get("status")
    if status is not None and status not in STATUSES:
        return f"job.doc['status'] is {status!r}, not one of {', '.join(STATUSES)}"
    return None


__all__ = [
    "ATTEMPT_FIELDS",
    "BACKEND_FIELDS",
    "BINDING_FIELDS",
    "BOUND",
    "COMPLETED",
    "DOCUMENT_FIELDS",
    "FAILED",
    "FINISHED",
    "FRAGMENT_FIELDS",
    "INFLIGHT_FIELDS",
    "OPTION_FIELDS",
    "PREEMPTED",
    "PREVIOUS_PART_FIELDS",
    "PREVIOUS_RUN_FIELDS",
    "RUNNING",
    "STATES",
    "STATE_FIELDS",
    "STATUSES",
    "binding_problem",
    "document_problem",
    "part_problem",
]
