"""Runs as signac jobs: finding the project, creating a sweep point's job, finding a job again.

A run of the sweep is one signac job, identified by its state point
`{"hypothesis_id", "experiment_id", **statepoint}`; `job.doc["limina"]` links it to the research
record. The tracker run bound to it lives in `job.doc["tracker"]` (aexp.binding).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aexp.agent.actor import current_actor, with_action
from aexp.errors import BindingError, JobNotFoundError, ProjectNotFoundError, StatepointError
from aexp.jobdoc import read_doc, update_doc
from aexp.validate import check_statepoint

if TYPE_CHECKING:
    import signac

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
RESERVED_KEYS = ("hypothesis_id", "experiment_id")
STATEPOINT_FILE = "signac_statepoint.json"  # signac.job.Job.FN_STATE_POINT


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


def project_root_of(job: Any) -> str:
    """The root of the project a job belongs to: the directory above its workspace (signac 2
    keeps the workspace at `<project>/workspace`)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(job.path)))


def open_project(path: str | os.PathLike | None = None) -> signac.Project:
    """The signac project containing `path` (default: the current directory).

    Raises ProjectNotFoundError outside a project.
    """
    import signac

    try:
        return signac.get_project(path or os.getcwd(), search=True)
    except LookupError:
        where = os.path.abspath(path or os.getcwd())
        raise ProjectNotFoundError(
            f"no signac project at or above {where} (a project has a .signac/config file)."
        ) from None


def check_id(kind: str, value: Any) -> str:
    """`value` if it is a usable experiment or hypothesis id, else BindingError saying why."""
    if not isinstance(value, str) or not _ID.match(value):
        raise BindingError(
            f"{kind} must be a name of letters, digits, '_', '.' or '-' (not {value!r})."
        )
    return value


def full_statepoint(
    experiment_id: str, hypothesis_id: str | None, statepoint: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The job's state point: the ids, then `statepoint`, checked (see aexp.validate).

    Raises BindingError for a bad id or a clash with the ids, StatepointError for a state point
    signac or strict JSON would refuse.
    """
    check_id("experiment_id", experiment_id)
    if hypothesis_id is not None:
        check_id("hypothesis_id", hypothesis_id)
    statepoint = dict(statepoint or {})
    clash = set(RESERVED_KEYS) & set(statepoint)
    if clash:
        raise BindingError(
            f"the state point may not set {sorted(clash)[0]!r}; pass it as an argument."
        )
    check_statepoint(statepoint)
    ids = {"experiment_id": experiment_id}
    if hypothesis_id is not None:
        ids = {"hypothesis_id": hypothesis_id, **ids}
    return {**ids, **statepoint}


def create_run(
    *,
    experiment_id: str,
    hypothesis_id: str | None = None,
    statepoint: Mapping[str, Any] | None = None,
    project: signac.Project | None = None,
    actor: Mapping[str, Any] | None = None,
) -> signac.job.Job:
    """Open or create the job for one point of a sweep and return it.

    The state point is `{"hypothesis_id", "experiment_id", **statepoint}` (the job's identity;
    without a hypothesis the key is left out and the run's group has one part fewer);
    `job.doc["limina"]` links it to the research record and `job.doc["status"]` starts as
    "created". Calling it again with the same arguments returns the same job and changes nothing.
    `actor` is who creates it (aexp.agent.actor; default: this process, tool "aexp.create_run"),
    recorded as `job.doc["actor"]["create"]` when the job is new.

    Raises BindingError (bad id) or StatepointError (a key or value signac or strict JSON would
    refuse) before anything is written: a refused state point leaves nothing on disk. OSError
    when the file system refuses the job's directory (full, read-only; nothing is left either).
    """
    sp = full_statepoint(experiment_id, hypothesis_id, statepoint)
    if project is None:  # not `project or ...`: an empty signac Project is falsy (len 0)
        project = open_project()
    job = project.open_job(sp)
    existed = os.path.isdir(job.path)
    try:
        job.init()
    except OSError:  # the file system refused (full, read-only): not the state point's fault
        if not existed:
            shutil.rmtree(job.path, ignore_errors=True)
        raise
    except Exception as exc:  # signac refused after all: leave nothing behind
        if not existed:
            shutil.rmtree(job.path, ignore_errors=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StatepointError(f"signac refused the state point {sp!r}: {first}") from None

    def created(doc: dict[str, Any]) -> dict[str, Any] | None:
        updates: dict[str, Any] = {}
        if "limina" not in doc:
            updates["limina"] = {"experiment_id": experiment_id, "hypothesis_id": hypothesis_id}
        if "status" not in doc:  # new (or its creation was cut short): who creates it
            updates["status"] = "created"
            who = actor or current_actor("aexp.create_run", root=project.path)
            updates["actor"] = with_action(doc, "create", who)
        return updates

    update_doc(job, created)
    return job


def is_job_id(name: str) -> bool:
    """True if `name` has the shape of a signac job id (32 lowercase hex digits)."""
    return _JOB_ID.match(name) is not None


def is_job_dir(workspace: str, name: str) -> bool:
    """True if `workspace/name` holds a job: its state point file exists and is not empty.

    signac lists every directory of the workspace whose name looks like a job id, and fails on
    the first one whose state point it cannot read (JobsCorruptedError), which ends `status`,
    `run -f ...` and every other command that reads state points. aexp before 0.2 left such
    directories behind when signac refused a state point after creating the directory (an
    empty directory). One `stat` per directory: cheap enough for every listing of the
    workspace. A state point file that exists but is damaged is caught where it is read
    (`aexp.binding.run_spec`).
    """
    try:
        return os.stat(f"{workspace}{os.sep}{name}{os.sep}{STATEPOINT_FILE}").st_size > 0
    except OSError:
        return False


# The directories found to hold a job in this process, by workspace: a job's state point file
# is never removed while its directory stays, so each directory is stat'ed once per process,
# however often flow, the pass summary and the stray check list the workspace.
_jobs_seen: dict[str, set[str]] = {}


def jobs_seen(workspace: str) -> set[str]:
    """The names of `workspace` found to hold a job in this process (`known_job_dir`): the set
    itself, which grows as more are found; treat it as read-only."""
    known = _jobs_seen.get(workspace)
    if known is None:
        known = _jobs_seen[workspace] = set()
    return known


def known_job_dir(workspace: str, name: str) -> bool:
    """`is_job_dir`, with a directory found to hold a job remembered for the process (one `stat`
    per directory and process; one that does not is asked again each time)."""
    known = jobs_seen(workspace)
    if name in known:
        return True
    if is_job_dir(workspace, name):
        known.add(name)
        return True
    return False


def stray_job_dirs(workspace: str) -> list[str]:
    """Names of the directories of `workspace` that look like jobs but are not (`is_job_dir`),
    sorted. An absent workspace has none."""
    try:
        names = os.listdir(workspace)
    except FileNotFoundError:
        return []
    known = jobs_seen(workspace)
    return sorted(
        n for n in names if n not in known and _JOB_ID.match(n) and not known_job_dir(workspace, n)
    )


def stray_dir_message(workspace: str, name: str) -> str:
    """The one line that reports a stray directory and says what to do with it."""
    path = os.path.join(workspace, name)
    return (
        f"{path} is not a job (its {STATEPOINT_FILE} is missing or empty, as an interrupted "
        f"create_run of an older aexp left it); it is skipped: remove it with rm -r {path}"
    )


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
    # A run id (8 characters of [a-z0-9]) can look like a job id prefix: an exact run id wins
    # over an ambiguous prefix.
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


__all__ = [
    "check_id",
    "create_run",
    "find_job",
    "find_project_root",
    "full_statepoint",
    "is_job_dir",
    "is_job_id",
    "jobs_seen",
    "known_job_dir",
    "open_project",
    "project_root_of",
    "stray_dir_message",
    "stray_job_dirs",
]
