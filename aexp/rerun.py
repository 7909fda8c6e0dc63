"""Run a job again from scratch, as a NEW run bound to the same job, keeping the old run's record.

    rerun(job)   # a finished, failed or preempted job: a fresh run (new run id), state bound

Two ways to run a job again, for two situations:

    aexp rearm JOB   the same run continued: the failed run's id, its step axis and its last
                     checkpoint; for a failure that had nothing to do with the code (a full disk,
                     a node failure); only failed runs
    aexp rerun JOB   a new run: after the experiment was fixed or changed, the results of the
                     old run are not the results of the new code, so they must not share a run

What `rerun` keeps and moves (docs/results.md, "Running a job again"):
- the binding gets a new run id (same backends, project, offline mode and tags; the group from
  the current `[tracker] group_by`), state `bound`, and a `previous_runs` list that records the
  old run: run id, state, exit code, attempts, last step, summary, bound_at, finished_at,
  synced_at, url and each backend's url and synced_at;
- the old run's journal stays where it is, `<job>/tracker_log/<old id>/events.jsonl`, and its
  W&B offline folders stay in `<job>/wandb/`. The sync follows the run a job is bound to, so a
  run that has not reached every backend yet (W&B offline, MLflow) is refused: sync it first, or
  pass `force` to keep it in the job only;
- the job's checkpoints (`checkpoint.0.json`, `checkpoint.1.json`), `error.log` and its result
  files (`[workflow] artifacts` of signac.rc) move into the old run's directory
  `<job>/tracker_log/<old id>/`, so the new run starts fresh, its attempts' tracebacks are its
  own, and no result of the old run is taken for one of the new. Other files of the job are not
  touched: the new run overwrites them as it writes them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from aexp.agent.actor import current_actor, with_action
from aexp.binding import backend_parts, get_binding, new_binding, write_init_event
from aexp.checkpoint import SLOTS
from aexp.errors import BindingError
from aexp.handles import adapter_for
from aexp.jobdoc import now_iso, read_doc, update_doc
from aexp.joblock import job_claim
from aexp.jobs import project_root_of
from aexp.journal import JOURNAL_DIR
from aexp.outcome import ERROR_LOG
from aexp.schema import BOUND, COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING
from aexp.settings import load_settings
from aexp.state import job_state

RERUNNABLE = (FINISHED, FAILED, COMPLETED, PREEMPTED)
# The files of a run that belong to it alone: they move with the old run's record.
RUN_FILES = (*SLOTS, ERROR_LOG)


def unsynced_backends(binding: Mapping[str, Any]) -> list[str]:
    """The backends that have not received the run yet although they get it from a login node
    (W&B offline, MLflow): a rerun would leave the old run local only (the sync follows the
    bound run). The sync's own rule (aexp.sync.rules.unsynced_backends)."""
    from aexp.sync.rules import unsynced_backends as lacking

    return lacking(binding)


def check_rerunnable(
    job: Any, doc: Mapping[str, Any] | None = None, *, force: bool = False
) -> dict[str, Any]:
    """The job's binding if its run can be replaced by a new one, else BindingError saying why.

    A run some backend has not received yet is refused unless `force`: the sync follows the run
    a job is bound to, so the old run would stay in the job only (its journal and files kept).
    """
    binding = get_binding(job, doc)
    if binding is None:
        raise BindingError(
            f"job {job.id} is not bound to a run yet; `python project.py run` runs it."
        )
    state = binding["state"]
    # An attempt's start is in its journal before its document records it (aexp.state).
    if state == RUNNING or job_state(job, doc).state == RUNNING:
        raise BindingError(
            f"job {job.id}'s run {binding['run_id']} is running; rerun it once it has ended."
        )
    if state == BOUND:
        raise BindingError(
            f"job {job.id}'s run {binding['run_id']} has not run yet; execute runs it as it is."
        )
    missing = unsynced_backends(binding)
    if missing and not force:
        raise BindingError(
            f"job {job.id}'s run {binding['run_id']} has not reached {', '.join(missing)} yet: "
            f"sync it first (aexp sync-offline {job.id[:8]}, from a login node), or rerun with "
            "--force to keep the old run in the job only."
        )
    return binding


def previous_record(binding: Mapping[str, Any], replaced_at: str) -> dict[str, Any]:
    """What `previous_runs` keeps of a run that a rerun replaced."""
    return {
        "run_id": binding["run_id"],
        "backend": binding["backend"],
        "state": binding["state"],
        "exit_code": binding.get("exit_code"),
        "attempts": binding.get("attempts", 0),
        "last_step": binding.get("last_step", -1),
        "summary": dict(binding.get("summary") or {}),
        "url": binding.get("url"),
        "bound_at": binding.get("bound_at"),
        "finished_at": binding.get("finished_at"),
        "synced_at": binding.get("synced_at"),
        "replaced_at": replaced_at,
        "backends": {
            name: _part(binding, name, part) for name, part in backend_parts(binding).items()
        },
    }


def _part(binding: Mapping[str, Any], name: str, part: Mapping[str, Any]) -> dict[str, Any]:
    # The primary backend's url and synced_at may live at the binding's top level only (a sync
    # that records them there).
    primary = name == binding["backend"]
    return {
        "url": part.get("url") or (binding.get("url") if primary else None),
        "synced_at": part.get("synced_at") or (binding.get("synced_at") if primary else None),
    }


def _move_run_files(job: Any, run_id: str, artifacts: Sequence[str] = ()) -> list[str]:
    """Move RUN_FILES and the `artifacts` (paths inside the job) into `tracker_log/<run_id>/`;
    returns the names moved.

    A file already moved (a rerun interrupted after this step) is not overwritten.
    """
    target = os.path.join(job.path, JOURNAL_DIR, run_id)
    moved = []
    inside = [a for a in artifacts if not os.path.isabs(a) and not a.startswith(os.pardir)]
    for name in dict.fromkeys([*RUN_FILES, *map(os.path.normpath, inside)]):
        source = os.path.join(job.path, name)
        if not os.path.exists(source):
            continue
        os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
        destination = os.path.join(target, name)
        if os.path.exists(destination):
            destination = os.path.join(target, f"{name}.{now_iso().replace(':', '')}")
        os.replace(source, destination)
        moved.append(name)
    return moved


def rerun(
    job: Any,
    *,
    force: bool = False,
    artifacts: Sequence[str] | None = None,
    actor: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Bind `job` to a new run in place of its ended one (module docstring). `artifacts`: the
    result files to move aside with the old run (None: `[workflow] artifacts` of the signac.rc
    of the job's project).

    Returns (the new binding, the old run's `previous_runs` record, the files moved into the old
    run's directory). Holds the job's claim throughout. Raises JobBusyError when another process
    works on the job, BindingError when its run cannot be rerun (`check_rerunnable`),
    TrackerInitError when a backend's SDK is missing or refuses the new run (nothing changed).
    `actor` (aexp.agent.actor; default: this process, tool "aexp.rerun") is recorded as
    `job.doc["actor"]["rerun"]` with the new binding, and named in the new run's config.
    """
    who = actor or current_actor("aexp.rerun", root=project_root_of(job))
    with job_claim(job):
        old = check_rerunnable(job, read_doc(job, fresh=True), force=force)
        # The new binding is built (and every backend asked) before anything changes.
        adapters = [adapter_for(old, name) for name in backend_parts(old)]
        fresh = new_binding(
            job,
            adapters,
            project=old.get("project") or "",
            offline=bool(old.get("offline")),
            tags=old.get("tags") or (),
            notes=old.get("notes"),
            actor=who,
        )
        record = previous_record(old, now_iso())
        if artifacts is None:  # signac 2's layout: <project>/workspace/<job id>
            artifacts = load_settings(project_root_of(job)).artifacts
        moved = _move_run_files(job, old["run_id"], artifacts)

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            current = check_rerunnable(job, doc, force=force)
            if current["run_id"] != old["run_id"]:  # cannot happen under the claim; be sure
                raise BindingError(f"job {job.id}'s run changed while it was being rerun.")
            binding = {**fresh, "previous_runs": [*(old.get("previous_runs") or []), record]}
            actors = with_action(doc, "rerun", who)
            return {"tracker": binding, "status": "created", "actor": actors}

        binding = update_doc(job, change)["tracker"]
        write_init_event(job, binding)
    return binding, record, moved


__all__ = ["RERUNNABLE", "RUN_FILES", "check_rerunnable", "previous_record", "rerun"]
