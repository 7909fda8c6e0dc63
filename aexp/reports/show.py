"""`aexp show`: everything about one job as one document (`aexp.show/1`): its state point, its
document (the binding apart), its binding, each backend's sync state and the run files on disk.

What is synced is said per backend, from the job document (each backend's `synced_at`; W&B's
fragments as the document records them), never from the primary backend or W&B's marker files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aexp.binding import backend_parts
from aexp.contract import document, plain
from aexp.errors import BindingError
from aexp.jobdoc import read_doc
from aexp.state import CORRUPT, job_state

SHOW = "aexp.show/1"


def run_files(job: Any, binding: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The run's files in the job: the noop backend's journal, W&B's offline folders (each
    said synced, in doubt or not synced as the job document records it)."""
    files: list[dict[str, Any]] = []
    if binding is None:
        return files
    parts = backend_parts(binding)
    events = Path(job.path, "tracker_log", binding["run_id"], "events.jsonl")
    if binding["backend"] == "noop" and events.exists():
        files.append({"path": str(events), "kind": "noop event log"})
    if "wandb" in parts:
        from aexp.wandb_offline import find_fragments

        part = parts["wandb"]
        recorded = (part.get("state") or {}).get("fragments") or {}
        in_flight = (part.get("inflight") or {}).get("fragments") or {}
        for folder in find_fragments(job.path):
            # What the job document records, not W&B's marker files (docs/sync.md).
            if folder.name in recorded:
                kind = "W&B offline run, synced"
            elif folder.name in in_flight:
                kind = "W&B offline run, upload in doubt (the next sync asks the server)"
            else:
                kind = "W&B offline run, not synced"
            files.append({"path": str(folder), "kind": kind})
    return files


def sync_state(binding: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each backend of the run: whether it is synced from a login node at all, and whether it
    holds the run (its own `synced_at`, not the primary backend's)."""
    if binding is None:
        return {}
    from aexp.sync.rules import backend_needs_sync

    offline = bool(binding.get("offline"))
    state = {}
    for name, part in backend_parts(binding).items():
        state[name] = {
            "synced_from_login_node": backend_needs_sync(name, part, offline=offline),
            "synced_at": part.get("synced_at"),
            "in_flight": bool(part.get("inflight")),
            "url": part.get("url"),
        }
    return state


def show_document(job: Any) -> dict[str, Any]:
    """Everything about `job` (a signac job): `aexp.show/1`. Its state (`state`, `stale`,
    `stalled`, `shown`) and its binding (`tracker`: a first attempt's run's journal holds it
    before the document does) are aexp.state.job_state's, as every view has them. Raises
    BindingError for a damaged document."""
    doc = read_doc(job)
    seen = job_state(job, doc)
    if seen.state == CORRUPT:  # a damaged binding: an error here, as a damaged document is
        raise BindingError(seen.problem)
    binding = seen.binding
    return document(
        SHOW,
        **plain(
            {
                "job_id": job.id,
                "path": job.path,
                "state": seen.state,
                "stale": seen.stale,
                "stalled": seen.stalled,
                "shown": seen.shown,
                "statepoint": job.cached_statepoint,
                "document": {k: v for k, v in doc.items() if k != "tracker"},
                "tracker": binding,
                "sync": sync_state(binding),
                "run_files": run_files(job, binding),
            }
        ),
    )


__all__ = ["SHOW", "run_files", "show_document", "sync_state"]
