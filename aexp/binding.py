"""Runs as signac jobs, and the binding of a job to its tracker run (`job.doc["tracker"]`).

The job owns the truth; the tracker mirrors it. docs/job-document.md is the schema of every key
aexp writes. In short:

    job.doc["limina"]   {"experiment_id", "hypothesis_id"}          the research link
    job.doc["status"]   created | running | complete | failed | preempted   (run_lifecycle)
    job.doc["tracker"]  the TrackerBinding: backend, run_id, url, project, group, plus the
                        lifecycle fields the workflow's conditions read (state, attempts, ...)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aexp.errors import BindingError, JobNotFoundError, ProjectNotFoundError
from aexp.jobdoc import now_iso, read_doc, update_doc
from aexp.settings import validate_project_name
from aexp.trackers import ADAPTERS, RunHandle, TrackerAdapter, get_adapter

if TYPE_CHECKING:
    import signac

# Values of job.doc["tracker"]["state"].
BOUND, RUNNING, PREEMPTED, COMPLETED, FAILED, FINISHED = (
    "bound",
    "running",
    "preempted",
    "completed",
    "failed",
    "finished",
)
STATES = (BOUND, RUNNING, PREEMPTED, COMPLETED, FAILED, FINISHED)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def find_project_root(path: str | os.PathLike | None = None) -> str:
    """The directory of the signac project at or above `path` (default: the current directory).

    Found as signac finds it (the nearest directory with a `.signac/config` file), but without
    importing signac (~40 ms): for commands that only touch job directories and documents
    (`aexp sync-offline`). Its workspace is `<root>/workspace`. Raises ProjectNotFoundError.
    """
    start = os.path.abspath(path or os.getcwd())
    here = start
    while not os.path.isfile(os.path.join(here, ".signac", "config")):
        up = os.path.dirname(here)
        if up == here:  # let signac have the last word (it also recognises older schemas)
            return open_project(start).path
        here = up
    return here


def open_project(path: str | os.PathLike | None = None) -> signac.Project:
    """The signac project containing `path` (default: the current directory)."""
    import signac

    try:
        return signac.get_project(path or os.getcwd(), search=True)
    except LookupError:
        where = os.path.abspath(path or os.getcwd())
        raise ProjectNotFoundError(
            f"no signac project at or above {where} (a project has a .signac/config file)."
        ) from None


def _check_id(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise BindingError(
            f"{kind} must be a name of letters, digits, '_', '.' or '-' (not {value!r})."
        )
    return value


def create_run(
    *,
    experiment_id: str,
    hypothesis_id: str,
    statepoint: Mapping[str, Any] | None = None,
    project: signac.Project | None = None,
) -> signac.job.Job:
    """Open or create the job for one point of a sweep and return it.

    The state point is `{"hypothesis_id", "experiment_id", **statepoint}` (the job's identity);
    `job.doc["limina"]` links it to the research record and `job.doc["status"]` starts as
    "created". Calling it again with the same arguments returns the same job and changes nothing.
    """
    _check_id("experiment_id", experiment_id)
    _check_id("hypothesis_id", hypothesis_id)
    statepoint = dict(statepoint or {})
    clash = {"experiment_id", "hypothesis_id"} & set(statepoint)
    if clash:
        raise BindingError(
            f"the state point may not set {sorted(clash)[0]!r}; pass it as an argument."
        )
    if project is None:  # not `project or ...`: an empty signac Project is falsy (len 0)
        project = open_project()
    job = project.open_job(
        {"hypothesis_id": hypothesis_id, "experiment_id": experiment_id, **statepoint}
    )
    job.init()

    def created(doc: dict[str, Any]) -> dict[str, Any] | None:
        updates: dict[str, Any] = {}
        if "limina" not in doc:
            updates["limina"] = {"experiment_id": experiment_id, "hypothesis_id": hypothesis_id}
        if "status" not in doc:
            updates["status"] = "created"
        return updates

    update_doc(job, created)
    return job


def find_job(project: signac.Project, ident: str) -> signac.job.Job:
    """The job whose id starts with `ident`, or whose tracker run id is `ident`.

    Raises JobNotFoundError if nothing matches or a prefix matches several jobs.
    """
    ident = ident.strip()
    if not ident:
        raise JobNotFoundError("an empty job id matches no job.")
    try:
        names = os.listdir(project.workspace)
    except FileNotFoundError:  # no workspace directory yet: no jobs
        names = []
    matches = [name for name in names if _JOB_ID.match(name) and name.startswith(ident)]
    if len(matches) == 1:
        return project.open_job(id=matches[0])
    # A run id (W&B's are 8 characters of [a-z0-9]) can look like a job id prefix: an exact run
    # id wins over an ambiguous prefix.
    for job in project if names else ():
        try:
            binding = read_doc(job).get("tracker")
        except BindingError:  # one unreadable document must not hide every other job
            continue
        if isinstance(binding, dict) and binding.get("run_id") == ident:
            return job
    if len(matches) > 1:
        raise JobNotFoundError(
            f"job id prefix {ident!r} matches {len(matches)} jobs; give more characters."
        )
    raise JobNotFoundError(f"no job or tracker run with id {ident!r} in {project.path}.")


# -- the binding ------------------------------------------------------------------------------
def get_binding(job: Any, doc: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """`job.doc["tracker"]` validated, or None when the job is not bound.

    Raises BindingError (naming the job and what is wrong) when the binding was corrupted.
    """
    doc = read_doc(job) if doc is None else doc
    binding = doc.get("tracker")
    if binding is None:
        return None
    problem = None
    if not isinstance(binding, dict):
        problem = "is not an object"
    elif binding.get("backend") not in ADAPTERS:
        problem = f"names an unknown backend {binding.get('backend')!r}"
    elif not isinstance(binding.get("run_id"), str) or not binding["run_id"]:
        problem = "has no run_id"
    elif binding.get("state") not in STATES:
        problem = f"has an unknown state {binding.get('state')!r}"
    elif not isinstance(binding.get("extra", {}), dict):
        problem = "has an 'extra' that is not an object"
    if problem:
        raise BindingError(
            f"job {job.id}: job.doc['tracker'] {problem}; repair it or remove the key to re-bind "
            "(a new run is created)."
        )
    return binding


def run_spec(job: Any) -> dict[str, Any]:
    """Group, tags and config of the job's run, derived from its state point and Limina link.

    group  "<hypothesis>/<experiment>/<condition>" (condition: the state point's "condition",
           else "default"); tags name the three; config is the flattened state point plus
           `job_id`, `limina.experiment_id` and `limina.hypothesis_id`.
    """
    sp = job.cached_statepoint
    limina = read_doc(job).get("limina") or {}
    hypothesis = str(limina.get("hypothesis_id") or sp.get("hypothesis_id") or "H")
    experiment = str(limina.get("experiment_id") or sp.get("experiment_id") or "E")
    condition = str(sp.get("condition", "default"))
    config = {
        key: value
        for key, value in _flatten(sp).items()
        if key not in ("hypothesis_id", "experiment_id")
    }
    config.update(
        {"job_id": job.id, "limina.experiment_id": experiment, "limina.hypothesis_id": hypothesis}
    )
    return {
        "group": f"{hypothesis}/{experiment}/{condition}",
        "tags": [hypothesis, experiment, condition],
        "config": config,
    }


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def bind_tracker(
    job: Any,
    adapter: TrackerAdapter,
    *,
    project: str,
    offline: bool = True,
    tags: Iterable[str] = (),
    notes: str | None = None,
) -> dict[str, Any]:
    """Bind `job` to a new run of `adapter` and return the binding stored in `job.doc["tracker"]`.

    Idempotent: a job already bound keeps its run (same id) and its binding is returned as is.
    The adapter is called under the job lock, so concurrent binders create one run, not two.
    """
    validate_project_name(project)
    result: dict[str, Any] = {}

    def bind(doc: dict[str, Any]) -> dict[str, Any] | None:
        existing = get_binding(job, doc)
        if existing is not None:
            result.update(existing)
            return None
        spec = run_spec(job)
        all_tags = list(dict.fromkeys([*spec["tags"], *tags]))
        handle = adapter.init_run(
            project=project,
            group=spec["group"],
            tags=all_tags,
            config=spec["config"],
            notes=notes,
            offline=offline,
            workdir=job.path,
        )
        binding = {
            "backend": adapter.name,
            "run_id": handle.id,
            "url": handle.url,
            "project": handle.project,
            "group": handle.group,
            "offline": bool(offline),
            "state": BOUND,
            "attempts": 0,
            "last_step": -1,
            "exit_code": None,
            "bound_at": now_iso(),
            "extra": handle.persistent_extra(),
        }
        _close_quietly(adapter, handle)
        result.update(binding)
        return {"tracker": binding}

    update_doc(job, bind)
    return result


def _close_quietly(adapter: TrackerAdapter, handle: RunHandle) -> None:
    # init_run may open process-local resources (the noop log file); binding does not keep them.
    for key in [k for k in handle.extra if k.startswith("_")]:
        resource = handle.extra.pop(key)
        if hasattr(resource, "close"):
            resource.close()


def update_binding(job: Any, **fields: Any) -> dict[str, Any]:
    """Set fields of `job.doc["tracker"]` under the job lock; returns the updated binding."""

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        binding = get_binding(job, doc)
        if binding is None:
            raise BindingError(f"job {job.id} is not bound to a tracker run; bind it first.")
        return {"tracker": {**binding, **fields}}

    return update_doc(job, change)["tracker"]


def adapter_for(binding: Mapping[str, Any]) -> TrackerAdapter:
    """Construct the adapter that serves `binding` (its backend, with its stored options)."""
    options: dict[str, Any] = {}
    if binding["backend"] == "wandb" and binding.get("extra", {}).get("entity"):
        options["entity"] = binding["extra"]["entity"]
    return get_adapter(binding["backend"], **options)


def handle_for(job: Any, binding: Mapping[str, Any]) -> RunHandle:
    """A RunHandle rebuilt from a stored binding (for `TrackerAdapter.resume_run`).

    The run's config is re-derived from the job (`extra["_config"]`) rather than stored.
    """
    return RunHandle(
        id=binding["run_id"],
        url=binding.get("url"),
        project=binding.get("project", ""),
        group=binding.get("group", ""),
        extra={**(binding.get("extra") or {}), "_config": run_spec(job)["config"]},
    )


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
        rearmed = {**binding, "state": BOUND, "exit_code": None, "error": None, "finished_at": None}
        return {"tracker": rearmed, "status": "created"}

    return update_doc(job, change)["tracker"]
