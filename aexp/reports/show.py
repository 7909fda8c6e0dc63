"""`aexp show`: everything about one job as one document (`aexp.show/1`): its state point, its
document (the binding apart), its binding, and the run files on disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aexp.binding import get_binding
from aexp.contract import document, plain
from aexp.jobdoc import read_doc

SHOW = "aexp.show/1"


def run_files(job: Any, binding: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The run's files in the job: the noop backend's journal, W&B's offline folders."""
    files: list[dict[str, Any]] = []
    if binding is None:
        return files
    if binding["backend"] == "noop":
        events = Path(job.path, "tracker_log", binding["run_id"], "events.jsonl")
        if events.exists():
            files.append({"path": str(events), "kind": "noop event log"})
    elif binding["backend"] == "wandb":
        from aexp.wandb_offline import find_fragments, fragment_log

        for folder in find_fragments(job.path):
            log = fragment_log(folder)
            synced = log is not None and log.with_name(log.name + ".synced").exists()
            kind = "W&B offline run, synced" if synced else "W&B offline run, not synced"
            files.append({"path": str(folder), "kind": kind})
    return files


def show_document(job: Any) -> dict[str, Any]:
    """Everything about `job` (a signac job): `aexp.show/1`. Raises BindingError for a
    damaged document."""
    doc = read_doc(job)
    binding = get_binding(job, doc)
    return document(
        SHOW,
        **plain(
            {
                "job_id": job.id,
                "path": job.path,
                "statepoint": job.cached_statepoint,
                "document": {k: v for k, v in doc.items() if k != "tracker"},
                "tracker": binding,
                "run_files": run_files(job, binding),
            }
        ),
    )


__all__ = ["SHOW", "run_files", "show_document"]
