"""What a sync writes into the job document, the truth about what is synced.

Each write is one locked update of the binding (`job.doc["tracker"]`) that first checks the
binding still describes the run the sync worked on (same run id):

- `record_inflight`: before an upload starts, what it sends is recorded in flight in the
  backend's part (`inflight`: when, by which process, and the W&B fragments or the journal rows
  and artifacts it sends). An upload ended by anything before its outcome was recorded leaves
  it there, and the next sync settles it from the server's own account before sending anything
  of the run again (wandb_settle.py, replay.py). When this record cannot be written (a full
  disk), the upload does not start;
- `record_fragments`: a W&B fragment is recorded in the W&B part's `state.fragments` (folder name
  -> first and last step, rows, start time, artifacts) the moment it is judged uploaded, and
  leaves `inflight`. A fragment recorded there is synced, whatever W&B's marker files say: a
  missing marker never causes a second upload (only `resync` does);
- `record_backend`: one backend's part gets its `url`, `state`, `error` and, when the backend
  holds the whole run as the journal has it so far (`through`), `synced_at`, for a run that is
  finished or preempted (rules.sync_due). A part's `synced_at` is never set when an attempt
  started since the sync read the binding (its claim keeps attempts out, so that happens only to
  a sync that could not take the claim);
- the binding's own `synced_at` (what the workflow's `is_synced` reads) once the run is finished
  and every backend that has to be synced from a login node (rules.backend_needs_sync) has its
  `synced_at`. For the primary backend its URL is the binding's `url` too.

A document that cannot be written is reported in one line; the upload itself stands (its
in-flight record makes the next sync ask the server before sending it again).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aexp.binding import backend_parts, get_binding, update_backend
from aexp.errors import BindingError
from aexp.jobdoc import JobDir, now_iso, update_doc
from aexp.schema import RUNNING
from aexp.sync.hosts import app_url
from aexp.sync.rules import backend_needs_sync, sync_due

WANDB = "wandb"
_HOST = os.uname().nodename

Binding = dict[str, Any]


def _update(job: JobDir, run_id: str, edit: Callable[[Binding], Binding | None]) -> Binding | None:
    """Apply `edit` to the job's binding under its lock if it is still bound to `run_id`.
    Returns the binding as stored (None: not bound to that run, or not writable)."""
    result: list[Binding] = []

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        binding = get_binding(job, doc)
        if binding is None or binding["run_id"] != run_id:
            return None
        edited = edit(binding)
        result.append(edited if edited is not None else binding)
        return None if edited is None else {"tracker": edited}

    try:
        update_doc(job, change)
    except (BindingError, OSError) as exc:
        print(
            f"warning: job {job.id}: the sync could not record its progress: {exc}",
            file=sys.stderr,
        )
        return None
    return result[0] if result else None


def record_inflight(
    job: JobDir,
    run_id: str,
    name: str,
    *,
    fragments: Mapping[str, Mapping[str, Any]] | None = None,
    **fields: Any,
) -> Binding | None:
    """Record an upload to backend `name` in flight, before it starts: W&B `fragments`
    ({folder name: describe(view)}, added to those already in flight), or the `rows` and
    `artifacts` of a replay. Returns the binding as stored, None when it could not be written
    (then the upload must not start)."""

    def edit(binding: Binding) -> Binding:
        part = backend_parts(binding).get(name) or {}
        inflight = dict(part.get("inflight") or {})
        inflight.update(since=now_iso(), host=_HOST, pid=os.getpid(), **fields)
        if fragments is not None:
            inflight["fragments"] = {
                **(inflight.get("fragments") or {}),
                **{folder: dict(entry) for folder, entry in fragments.items()},
            }
        return update_backend(binding, name, inflight=inflight)

    return _update(job, run_id, edit)


def clear_inflight(
    job: JobDir, run_id: str, name: str, folders: Iterable[str] | None = None
) -> Binding | None:
    """Drop backend `name`'s in-flight record (W&B: only the fragments `folders`, when given):
    the upload's outcome is known."""
    return _update(job, run_id, lambda binding: _without_inflight(binding, name, folders))


def _without_inflight(
    binding: Binding, name: str, folders: Iterable[str] | None = None
) -> Binding | None:
    part = backend_parts(binding).get(name) or {}
    inflight = part.get("inflight")
    if not inflight:
        return None
    if folders is not None:
        left = {
            folder: entry
            for folder, entry in (inflight.get("fragments") or {}).items()
            if folder not in set(folders)
        }
        if left:
            return update_backend(binding, name, inflight={**inflight, "fragments": left})
    return update_backend(binding, name, inflight=None)


def record_fragments(
    job: JobDir,
    run_id: str,
    entries: Mapping[str, Mapping[str, Any]],
    *,
    settled: Iterable[str] = (),
    url: str | None = None,
) -> Binding | None:
    """Record W&B fragments of `run_id` as synced ({folder name: describe(view)}); they and the
    folders `settled` leave the in-flight record; `url` becomes the W&B run's page where none
    is recorded yet. Returns the binding as stored (None: not written)."""
    done = [*entries, *settled]

    def edit(binding: Binding) -> Binding | None:
        part = backend_parts(binding).get(WANDB) or {}
        state = dict(part.get("state") or {})
        fragments = dict(state.get("fragments") or {})
        fragments.update({name: dict(entry) for name, entry in entries.items()})
        state["fragments"] = fragments
        page = {"url": url} if url and not part.get("url") else {}
        updated = update_backend(binding, WANDB, state=state, **page)
        updated = _without_inflight(updated, WANDB, done) or updated
        return None if updated == binding else updated

    return _update(job, run_id, edit)


def record_backend(
    job: JobDir,
    run_id: str,
    name: str,
    *,
    attempts: Any,
    through: bool,
    **fields: Any,
) -> Binding | None:
    """Set `fields` (url, state, error) in backend `name`'s part and, when the backend holds the
    whole run now (`through`) and the run allows it (module docstring), its `synced_at`; then
    the binding's own `synced_at` if every backend is synced. `attempts` is the binding's attempt
    count when the sync read it. Returns the binding as stored."""

    def edit(binding: Binding) -> Binding:
        changes = {key: value for key, value in fields.items() if key != "url" or value}
        current = binding.get("attempts") == attempts and binding["state"] != RUNNING
        if through and current and sync_due(binding):
            # The backend holds the run as its journal stands; a new attempt clears it again.
            changes["synced_at"] = now_iso()
        final = finalize(update_backend(binding, name, **changes) if changes else binding)
        return None if final == binding else final  # nothing new: the document is not written

    return _update(job, run_id, edit)


def finalize(binding: Binding) -> Binding:
    """`binding` with its own `synced_at` set once the run is finished and every backend that has
    to be synced from a login node has its `synced_at` (unchanged otherwise)."""
    if binding.get("synced_at") or not binding.get("finished_at") or binding["state"] == RUNNING:
        return binding
    offline = bool(binding.get("offline"))
    parts = backend_parts(binding)
    needing = [n for n, p in parts.items() if backend_needs_sync(n, p, offline=offline)]
    if not needing or not all(parts[n].get("synced_at") for n in needing):
        return binding
    return {**binding, "synced_at": now_iso()}


def finalize_job(job: JobDir, run_id: str) -> Binding | None:
    """Write the binding's own `synced_at` if `finalize` says so (a sync killed between its
    last backend and this record)."""

    def edit(binding: Binding) -> Binding | None:
        done = finalize(binding)
        return done if done is not binding else None

    return _update(job, run_id, edit)


def wandb_url(project: str | None, entity: str | None, run_id: str) -> str | None:
    """`<app>/<entity>/<project>/runs/<run_id>` (for a run `wandb sync` printed no URL for), or
    None when the project or entity is unknown."""
    if not (project and entity):
        return None
    return f"{app_url()}/{entity}/{project}/runs/{run_id}"


__all__ = [
    "clear_inflight",
    "finalize",
    "finalize_job",
    "record_backend",
    "record_fragments",
    "record_inflight",
    "wandb_url",
]
