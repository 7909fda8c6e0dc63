"""Recording a run as synced in its job document: `tracker.synced_at` and `tracker.url`.

A run is recorded once every fragment of it is synced and it is finished (`finished_at` set), as
soon as its last upload closes (while the other uploads go on). A preempted run waiting for its
next attempt is uploaded fragment by fragment but not marked synced until it is finished: its next
attempt adds a fragment. The check and the write happen under the job's lock, so an attempt that
started meanwhile is not marked synced.

The URL is the one `wandb sync` printed for the run; when it printed none (a run uploaded earlier
by a bare `wandb sync`), it is derived from the web app's address (hosts.app_url) and the
binding's project and entity, or the binding's URL is kept when the entity is unknown.
"""

from __future__ import annotations

from typing import Any

from aexp.binding import RUNNING, get_binding
from aexp.errors import BindingError
from aexp.jobdoc import JobDir, now_iso, update_doc
from aexp.sync.hosts import app_url
from aexp.sync.plan import Run


def record_run(job: JobDir, run: Run, *, uploaded: bool, url: str | None) -> None:
    """Record `run` as synced in `job`'s document, if it is the job's run and something new of it
    was uploaded now or it was never recorded; `url` as printed by `wandb sync`, if it was."""
    if run.binding is None:
        return
    if run.binding.get("synced_at") and not uploaded:
        return
    record_synced(job, run, url or derived_url(run))


def record_synced(job: JobDir, run: Run, url: str | None) -> bool:
    """Record `synced_at` and `url` in the job's binding if it still describes this finished run
    (checked under the job lock, so an attempt that started meanwhile is not marked synced).
    Returns whether the document now says synced; False when it could not be read or written."""
    seen_attempts = (run.binding or {}).get("attempts")

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        binding = get_binding(job, doc)
        if (
            binding is None
            or binding["run_id"] != run.run_id
            or not binding.get("finished_at")
            or binding["state"] == RUNNING
            or binding.get("attempts") != seen_attempts
        ):
            return None
        return {"tracker": {**binding, "synced_at": now_iso(), "url": url or binding.get("url")}}

    try:
        stored = update_doc(job, change)
    except (BindingError, OSError):
        return False
    return bool((stored.get("tracker") or {}).get("synced_at"))


def derived_url(run: Run) -> str | None:
    """`<app>/<entity>/<project>/runs/<run_id>`, or None when the project or entity is unknown."""
    project = run.project or (run.binding or {}).get("project")
    entity = run.entity
    if not (project and entity):
        return None
    return f"{app_url()}/{entity}/{project}/runs/{run.run_id}"
