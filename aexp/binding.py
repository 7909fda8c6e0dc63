"""The binding of a job to its tracker run: `job.doc["tracker"]`.

The job owns the truth; trackers mirror it. docs/job-document.md is the schema of every key aexp
writes (aexp/schema.py checks it). In short:

    job.doc["limina"]   {"experiment_id", "hypothesis_id"}          the research link
    job.doc["status"]   created | running | complete | failed | preempted   (run_lifecycle)
    job.doc["tracker"]  the TrackerBinding (backend, run_id, url, project, group), the lifecycle
                        fields the workflow's conditions read (state, attempts, ...), and each
                        backend's own part under "backends" (its URL, whether it is synced, ...)

One run id serves every backend of a run; the run's events are in its journal
(`<job>/tracker_log/<run_id>/events.jsonl`, aexp.journal).
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aexp.agent.actor import current_actor, workflow_actor
from aexp.errors import BindingError, TrackerInitError
from aexp.jobdoc import derived, now_iso, read_doc, update_doc
from aexp.joblock import job_lock
from aexp.jobs import project_root_of
from aexp.journal import JOURNAL_DIR, JournalWriter, journal_path, read_head
from aexp.schema import BOUND, binding_problem, document_problem
from aexp.settings import validate_project_name
from aexp.spec import run_spec, run_tags
from aexp.trackers import ADAPTERS, TrackerAdapter, get_adapter, recreatable

_ID_SPACE = 36**8
_ID_LIMIT = (1 << 64) - (1 << 64) % _ID_SPACE  # the largest multiple of 36**8 within 64 bits


def new_run_id() -> str:
    """A new run id: 8 characters of [a-z0-9], the shape of W&B's own ids (every backend takes
    it, so one id names the run everywhere)."""
    alphabet = string.ascii_lowercase + string.digits
    # 8 uniform base-36 digits from one read of `os.urandom` (what `secrets` reads): 64 bits
    # modulo 36**8 below _ID_LIMIT (one draw in ~200 million is above it: drawn again), where
    # `secrets.randbelow` rejects a third of its 42-bit draws (1.5 reads per id).
    value = int.from_bytes(os.urandom(8), "little")
    while value >= _ID_LIMIT:
        value = int.from_bytes(os.urandom(8), "little")
    value %= _ID_SPACE
    digits = []
    for _ in range(8):
        value, digit = divmod(value, 36)
        digits.append(alphabet[digit])
    return "".join(digits)


# -- reading the binding ----------------------------------------------------------------------
def get_binding(job: Any, doc: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """`job.doc["tracker"]` validated, or None when the job is not bound.

    Raises BindingError (naming the job and what is wrong) when the document or the binding is
    damaged: any aexp field of the wrong type, an unknown backend or state (aexp/schema.py).
    """
    doc = read_doc(job) if doc is None else doc
    problem = derived(job, doc, lambda: _problem(job, doc))  # once per version of the document
    if problem:
        raise BindingError(problem)
    return doc.get("tracker")


def _problem(job: Any, doc: Mapping[str, Any]) -> str | None:
    problem = document_problem(doc)
    if problem:
        return f"job {job.id}: {problem}; repair it (docs/job-document.md)."
    binding = doc.get("tracker")
    problem = None if binding is None else binding_problem(binding, ADAPTERS)
    if problem:
        return (
            f"job {job.id}: {problem}; repair it (docs/job-document.md); removing the key "
            "binds the job again, to a new run unless its run's journal records the binding."
        )
    return None


def pending_binding(job_path: str) -> dict[str, Any] | None:
    """The binding a job's run journal holds while the job's document has none: the job's first
    attempt bound it and records that in the document only when it ends (or has run for a
    second), so until then, or when its process died before it could, the run's `init_run`
    event alone holds it. The newest such run of the job; None when there is none (one failed
    `listdir` for a job without `tracker_log/`). The binding is as it was bound (state `bound`,
    no attempt): the run's journal says the rest (aexp.state)."""
    try:
        names = os.listdir(f"{job_path}{os.sep}{JOURNAL_DIR}")
    except (FileNotFoundError, NotADirectoryError):
        return None
    found: tuple[tuple[str, str], dict[str, Any]] | None = None
    for name in names:
        init = read_head(journal_path(job_path, name))
        binding = init.get("binding") if init and init.get("event") == "init_run" else None
        if not isinstance(binding, dict) or binding.get("run_id") != name:
            continue
        if binding_problem(binding, ADAPTERS) is not None:
            continue
        key = (str(init.get("timestamp") or ""), name)
        if found is None or key > found[0]:
            found = (key, binding)
    return None if found is None else found[1]


def backend_parts(binding: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{backend name: its part of the binding}, in the binding's order.

    A binding written before several backends existed has one backend and keeps its state in
    `extra`, `url` and `synced_at`; it is read as the same thing.
    """
    parts = binding.get("backends")
    if parts:
        return parts
    return {
        binding["backend"]: {
            "url": binding.get("url"),
            "synced_at": binding.get("synced_at"),
            "options": _legacy_options(binding),
            "extra": dict(binding.get("extra") or {}),
        }
    }


def _legacy_options(binding: Mapping[str, Any]) -> dict[str, Any]:
    entity = (binding.get("extra") or {}).get("entity")
    return {"entity": entity} if binding["backend"] == "wandb" and entity else {}


# -- what a run is made of: aexp.spec -----------------------------------------------------
def check_backends(
    adapters: Sequence[type[TrackerAdapter] | TrackerAdapter],
    *,
    project: str,
    spec: Mapping[str, Any],
    tags: Sequence[str],
) -> None:
    """Ask each backend whether it would take this run (its `check_run`); raises its error."""
    validate_project_name(project)
    for adapter in adapters:
        adapter.check_run(project=project, group=spec["group"], tags=tags, config=spec["config"])


# -- binding ----------------------------------------------------------------------------------
def adapters_of(adapter: Any) -> list[TrackerAdapter]:
    """One adapter, a backend name, or a sequence of either, as a list of adapters (each
    backend once). Raises TrackerInitError for an unknown name or a missing SDK."""
    items = [adapter] if isinstance(adapter, TrackerAdapter | str) else list(adapter or [])
    if not items:
        raise TrackerInitError("bind a job to at least one tracker backend.")
    adapters = [get_adapter(item) if isinstance(item, str) else recreatable(item) for item in items]
    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise TrackerInitError(f"a backend is named twice in {', '.join(names)}.")
    return adapters


def new_binding(
    job: Any,
    adapters: Sequence[TrackerAdapter],
    *,
    project: str,
    offline: bool,
    tags: Iterable[str],
    notes: str | None,
    group_by: Sequence[str] | None = None,
    actor: Mapping[str, Any] | None = None,
    spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A fresh binding of `job` to a new run of `adapters` (nothing written). `group_by`: the
    state-point keys naming the run's group (None: the project's `[tracker] group_by`);
    `actor`: who starts the run, kept as `started_by` (None: this process's workflow step,
    aexp.agent.actor.workflow_actor); the run's config names them (`run_spec`). `spec`: the
    run's spec (`aexp.spec.run_spec`, made with the same `actor`) when the caller has it.

    Raises what `check_backends` raises: the run is refused before anything is stored.
    """
    if actor is None:
        actor = workflow_actor(project_root_of(job))
    if spec is None:
        spec = run_spec(job, group_by, actor=actor)
    all_tags = run_tags(spec, tags)
    check_backends(adapters, project=project, spec={**spec, "tags": all_tags}, tags=all_tags)
    run_id = new_run_id()
    parts = {
        adapter.name: {
            "url": adapter.run_url(project=project, run_id=run_id, offline=offline),
            "synced_at": None,
            "error": None,
            "options": adapter.options(),
        }
        for adapter in adapters
    }
    primary = adapters[0].name
    return {
        "backend": primary,
        "run_id": run_id,
        "url": parts[primary]["url"],
        "project": project,
        "group": spec["group"],
        "offline": bool(offline),
        "tags": all_tags,
        "notes": notes,
        "state": BOUND,
        "attempts": 0,
        "last_step": -1,
        "exit_code": None,
        "error": None,
        "closed": False,
        "summary": {},
        "bound_at": now_iso(),
        "finished_at": None,
        "synced_at": None,
        "backends": parts,
        "started_by": dict(actor),
    }


def write_init_event(
    job: Any,
    binding: Mapping[str, Any],
    writer: JournalWriter | None = None,
    *,
    spec: Mapping[str, Any] | None = None,
    record: bool = False,
) -> None:
    """Start the run's journal with its `init_run` event (what every backend is told).

    With `writer` (the attempt's own, on the same journal) the event goes through it and the
    file stays open for the attempt's events; else the journal is opened and closed here.
    `spec`: the run's spec when the caller has it. `record`: the event carries the binding
    itself, for a job whose document does not hold it yet (`pending_binding`).
    """
    if spec is None:
        spec = run_spec(job, actor=binding.get("started_by"))
    own = writer is None
    if writer is None:
        writer = JournalWriter(journal_path(job.path, binding["run_id"]))
    try:
        writer.init_run(
            run_id=binding["run_id"],
            project=binding.get("project", ""),
            group=binding.get("group", ""),
            tags=list(binding.get("tags") or spec["tags"]),
            config=spec["config"],
            notes=binding.get("notes"),
            offline=bool(binding.get("offline")),
            backends=list(backend_parts(binding)),
            binding=binding if record else None,
            # A signac job's, read already for the spec; a job's directory alone has none.
            statepoint=getattr(job, "cached_statepoint", None),
        )
    finally:
        if own:
            writer.close()


def bind_tracker(
    job: Any,
    adapter: Any = None,
    *,
    project: str,
    offline: bool = True,
    tags: Iterable[str] = (),
    notes: str | None = None,
    group_by: Sequence[str] | None = None,
    actor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Bind `job` to a new run and return the binding stored in `job.doc["tracker"]`.

    `adapter` is a TrackerAdapter, a backend name, or a list of them (several backends mirror
    one run, with one run id); the first is the primary one (`backend`, `url`). Nothing of the
    backends runs here: live backends open the run when an execution attempt starts (so binding
    alone leaves no W&B folder), replayed ones at sync. The run's journal gets its `init_run`.
    `group_by` names the run's group (None: the project's `[tracker] group_by`, see `spec_of`);
    `actor` is who binds it, named in the run's config (default: this process, tool
    "aexp.bind_tracker").

    Idempotent: a job already bound keeps its run (same id) and its binding is returned as is;
    so does a job whose first attempt bound it without recording it yet (`pending_binding`).
    Raises before anything is written: TrackerInitError (unknown backend, missing SDK),
    SettingsError (bad project name), TrackerUsageError (a backend refuses the run).
    """
    adapters = adapters_of(adapter)
    validate_project_name(project)
    result: dict[str, Any] = {}

    def bind(doc: dict[str, Any]) -> dict[str, Any] | None:
        existing = get_binding(job, doc)
        if existing is not None:
            result.update(existing)
            return None
        pending = pending_binding(job.path)
        if pending is not None:  # bound by a first attempt that has not recorded it: that run
            result.update(pending)
            return {"tracker": pending}
        who = actor or current_actor("aexp.bind_tracker", root=project_root_of(job))
        binding = new_binding(
            job,
            adapters,
            project=project,
            offline=offline,
            tags=tags,
            notes=notes,
            group_by=group_by,
            actor=who,
        )
        result.update(binding)
        return {"tracker": binding}

    # The check and the write under the job's lock: two binders at once would otherwise both
    # find no journal and both write its `init_run`.
    with job_lock(job):
        update_doc(job, bind)
        if not journal_path(job.path, result["run_id"]).exists():
            write_init_event(job, result)
    return result


def update_binding(job: Any, **fields: Any) -> dict[str, Any]:
    """Set fields of `job.doc["tracker"]` under the job lock; returns the updated binding."""

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        binding = get_binding(job, doc)
        if binding is None:
            raise BindingError(f"job {job.id} is not bound to a tracker run; bind it first.")
        return {"tracker": {**binding, **fields}}

    return update_doc(job, change)["tracker"]


def update_backend(binding: Mapping[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    """A copy of `binding` with `fields` set in backend `name`'s part (nothing written)."""
    parts = {key: dict(part) for key, part in backend_parts(binding).items()}
    parts.setdefault(name, {}).update(fields)
    updated = {**binding, "backends": parts}
    if name == binding["backend"] and "url" in fields:
        updated["url"] = fields["url"] or binding.get("url")
    return updated


__all__ = [
    "adapters_of",
    "backend_parts",
    "bind_tracker",
    "check_backends",
    "get_binding",
    "new_binding",
    "new_run_id",
    "pending_binding",
    "update_backend",
    "update_binding",
    "write_init_event",
]
