"""A job's state point file, checked and, when lost or damaged, rebuilt from its run's journal.

signac names a job by the MD5 hash of its state point (`signac.job.calc_id`) and keeps the state
point in `<job>/signac_statepoint.json`. When that file is deleted, truncated (a full disk, a
kill during a copy) or edited by hand, signac refuses the job, and so does every command that
lists jobs. The job's results, checkpoints and journal are still there, and so is its state
point: every run's journal starts with an `init_run` event whose `config` is the flattened state
point plus the run's `job_id` and research ids (aexp.spec.spec_of). `rebuild_statepoint` turns
that back into a state point and accepts it only when it hashes to the job's id, so a rebuilt
file is exactly the one signac wrote.

Every command lists the workspace through `usable_job_dirs`: a directory whose state point file
is missing or empty, and a job the command found damaged (`leave_out`), is left out and said
once (`damage_line`): a damaged job with `aexp repair`, never with its removal, since it holds
results; only a directory that holds nothing at all may be named for removal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aexp.agent.actor import ACTOR_PREFIX
from aexp.errors import StatepointError
from aexp.jobdoc import JobDir
from aexp.joblock import job_lock
from aexp.jobs import STATEPOINT_FILE, is_job_id, jobs_seen, known_job_dir
from aexp.journal import iter_events, journal_path

_JOURNALS = "tracker_log"
# What a job directory holds that is worth nothing alone: its state point file and aexp's locks.
_WORTHLESS = frozenset({STATEPOINT_FILE, ".aexp.lock", ".aexp.claim", ".aexp.lock.filelock"})
# Per workspace, in this process: damaged jobs left out of every listing, and the directories
# already said (once each). The directories found to be jobs: aexp.jobs.jobs_seen.
_left_out: dict[str, set[str]] = {}
_said: set[str] = set()
_readable: dict[str, tuple[int, int]] = {}  # job path -> its state point file's stamp, read fine


# The keys of a run's config that describe the run, not its job's state point: what spec_of adds
# to the flattened state point (aexp.spec.spec_of); a state point rebuilt from a run's config
# leaves them out.
RUN_CONFIG_KEYS = ("job_id", "limina.experiment_id", "limina.hypothesis_id")


def is_run_key(key: str) -> bool:
    """True for a config key spec_of adds (RUN_CONFIG_KEYS, and the actor's `aexp.actor.*`)."""
    return key in RUN_CONFIG_KEYS or key.startswith(ACTOR_PREFIX)


def statepoint_problem(job: Any) -> str | None:
    """What is wrong with the job's state point file, in words; None when signac can read it.

    `job` is anything with `id` and `path` (a signac Job, or aexp.jobdoc.JobDir). Checks what
    signac checks when it opens a job: the file exists, is a JSON object, and hashes to the id.
    """
    path = os.path.join(job.path, STATEPOINT_FILE)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return f"its {STATEPOINT_FILE} is missing"
    except OSError as exc:
        return f"its {STATEPOINT_FILE} cannot be read ({exc.strerror or exc})"
    if not data.strip():
        return f"its {STATEPOINT_FILE} is empty"
    try:
        statepoint = json.loads(data)
    except ValueError:
        return f"its {STATEPOINT_FILE} is not valid JSON (truncated or edited)"
    if not isinstance(statepoint, dict):
        return f"its {STATEPOINT_FILE} is not a JSON object"
    if _calc_id(statepoint) != job.id:
        return f"its {STATEPOINT_FILE} does not hash to the job's id (edited by hand?)"
    return None


def _calc_id(statepoint: Mapping[str, Any]) -> str:
    from signac.job import calc_id  # signac's own rule for a job's id

    return calc_id(statepoint)


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    # Inverse of aexp.spec's flattening: signac forbids dots in state point keys, so a dotted
    # key always stood for nesting.
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ValueError(key)
        node[leaf] = value
    return nested


def _candidates(config: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """State points a run's config may have come from: with the research ids (what
    `create_run` makes) or without them (a job made by signac directly). A state point the
    journal recorded whole (`{"": statepoint}`) is the one candidate: flattening loses an empty
    mapping, recording it whole does not."""
    if set(config) == {""}:
        yield dict(config[""])
        return
    try:
        rest = _unflatten({k: v for k, v in config.items() if not is_run_key(k)})
    except ValueError:
        return
    experiment = config.get("limina.experiment_id")
    hypothesis = config.get("limina.hypothesis_id")
    if experiment is not None:
        if hypothesis is not None:
            yield {"hypothesis_id": hypothesis, "experiment_id": experiment, **rest}
        yield {"experiment_id": experiment, **rest}
    yield rest


def _init_configs(job: Any) -> Iterator[dict[str, Any]]:
    """What each run journal's `init_run` in the job (current and earlier runs) holds of the
    state point: its `statepoint` where recorded, else its `config` (flattened)."""
    try:
        run_ids = sorted(os.listdir(os.path.join(job.path, _JOURNALS)))
    except OSError:
        return
    for run_id in run_ids:
        try:
            for event in iter_events(journal_path(job.path, run_id)):
                if event.get("event") == "init_run":
                    if isinstance(event.get("statepoint"), dict):
                        yield {"": event["statepoint"]}
                    if isinstance(event.get("config"), dict):
                        yield event["config"]
                    break
        except OSError:
            continue


def rebuild_statepoint(job: Any) -> dict[str, Any]:
    """The job's state point, rebuilt from its runs' journals and checked against its id.

    Raises StatepointError (one sentence saying what was tried) when no journal holds a state
    point that hashes to the job's id.
    """
    configs = list(_init_configs(job))
    if not configs:
        raise StatepointError(
            f"job {job.id}'s state point cannot be rebuilt: it has no run journal "
            f"({_JOURNALS}/<run id>/events.jsonl) to rebuild it from; restore {STATEPOINT_FILE} "
            "from a backup or a copy of the project."
        )
    for config in configs:
        for statepoint in _candidates(config):
            if _calc_id(statepoint) == job.id:
                return statepoint
    raise StatepointError(
        f"job {job.id}'s state point cannot be rebuilt: the state point its journal records "
        "does not hash to the job's id (the journal belongs to another job, or a key was "
        f"renamed); restore {STATEPOINT_FILE} from a backup or a copy of the project."
    )


@dataclass(frozen=True)
class Repair:
    """What `repair_statepoint` found and did: `problem` (None: the file was intact),
    `statepoint` (as rebuilt, or None), `written` (False in a dry run or when intact)."""

    job_id: str
    problem: str | None
    statepoint: dict[str, Any] | None = None
    written: bool = False


def repair_statepoint(job: Any, *, dry_run: bool = False) -> Repair:
    """Rebuild a lost or damaged state point file from the journal and write it (atomically,
    under the job's lock, only if it is still damaged then). An intact file is left alone.

    Raises StatepointError when it cannot be rebuilt (`rebuild_statepoint`), OSError when the
    file cannot be written. Nothing else in the job is touched.
    """
    problem = statepoint_problem(job)
    if problem is None:
        return Repair(job.id, None)
    statepoint = rebuild_statepoint(job)
    if dry_run:
        return Repair(job.id, problem, statepoint)
    with job_lock(job):
        if statepoint_problem(job) is None:  # another process repaired it meanwhile
            return Repair(job.id, problem, statepoint)
        path = os.path.join(job.path, STATEPOINT_FILE)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(statepoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return Repair(job.id, problem, statepoint, written=True)


def damaged_jobs(workspace: str) -> list[JobDir]:
    """The job directories of `workspace` (named like job ids) whose state point signac cannot
    read (`statepoint_problem`), sorted by id. An absent workspace has none."""
    try:
        names = sorted(os.listdir(workspace))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        job = JobDir(name, os.path.join(workspace, name))
        if is_job_id(name) and os.path.isdir(job.path) and statepoint_problem(job):
            found.append(job)
    return found


def holds_results(path: str) -> bool:
    """Whether a job directory holds anything besides its state point file and aexp's lock files
    (a job document, a run's journal, result files, checkpoints)."""
    try:
        return any(name not in _WORTHLESS for name in os.listdir(path))
    except OSError:
        return False


def damage_line(job: Any) -> str:
    """One sentence for a job directory whose state point signac cannot read, and what to do:
    rebuild it from its run's journal (`aexp repair`); where no journal can, restore the file
    from a copy. Only a directory that holds nothing else (as an interrupted create of an older
    aexp left it) is named for removal: removing a job would lose its results."""
    problem = statepoint_problem(job) or f"its {STATEPOINT_FILE} cannot be read"
    if not holds_results(job.path):
        return (
            f"{job.path} is not a job ({problem}) and holds nothing else; it is skipped: remove "
            f"it with rm -r {job.path}"
        )
    try:
        rebuild_statepoint(job)
    except StatepointError as exc:
        return f"job {job.id}: {problem}; its results are intact, but {exc}"
    return (
        f"job {job.id}: {problem}; its results are intact: rebuild the state point from its "
        f"run's journal with: aexp repair {job.id}"
    )


def leave_out(workspace: str, job_ids: Iterable[str]) -> None:
    """Leave the jobs `job_ids` of `workspace` out of every listing in this process
    (`usable_job_dirs`): signac could not read their state points."""
    _left_out.setdefault(workspace, set()).update(job_ids)


def left_out(workspace: str) -> set[str]:
    """The jobs of `workspace` left out of listings in this process (`leave_out`)."""
    return set(_left_out.get(workspace, ()))


def usable_job_dirs(
    workspace: str, names: Iterable[str], say: Callable[[str], None] | None = None
) -> Iterator[str]:
    """The names among `names` (directories of `workspace` named like job ids) that hold a job
    signac can open: a state point file that is not empty (aexp.jobs.known_job_dir: one stat),
    and not left out (`leave_out`). The others are said once per process through `say`
    (default: stderr) as `damage_line` puts it, and left out (a job among them is `left_out`
    from then on): signac would fail on them and end the whole command.
    """
    # flow lists the workspace several times per command: each directory is checked once per
    # process (a job's state point file does not go away), which keeps `status` at one stat
    # per job (~2 us) whatever flow does.
    known = jobs_seen(workspace)
    skipped = _left_out.get(workspace, ())
    for name in names:
        if name in skipped:
            report_damage(workspace, name, say)
            continue
        if name in known or known_job_dir(workspace, name):
            yield name
        else:
            report_damage(workspace, name, say)
            if holds_results(f"{workspace}{os.sep}{name}"):  # a job: its pass has a problem
                leave_out(workspace, (name,))


def readable_job_dirs(
    workspace: str, names: Iterable[str], say: Callable[[str], None] | None = None
) -> Iterator[str]:
    """`usable_job_dirs`, and of those only the jobs whose state point signac can read
    (`statepoint_problem`: parsed and hashed, again only when the file changed); the others are
    said once per process and left out. For a long-lived reader of every state point (the
    dashboard), where a file damaged while it runs must not end every page."""
    for name in usable_job_dirs(workspace, names, say):
        path = f"{workspace}{os.sep}{name}"
        try:
            st = os.stat(f"{path}{os.sep}{STATEPOINT_FILE}")
        except OSError:  # removed meanwhile
            continue
        stamp = (st.st_mtime_ns, st.st_size)
        if _readable.get(path) == stamp:
            yield name
        elif statepoint_problem(JobDir(name, path)) is None:
            _readable[path] = stamp
            yield name
        else:
            report_damage(workspace, name, say)


def report_damage(workspace: str, name: str, say: Callable[[str], None] | None = None) -> str:
    """Say once per process (through `say`, default stderr) what is wrong with the directory
    `workspace/name` and what to do (`damage_line`, as a warning); returns that line."""
    line = damage_line(JobDir(name, os.path.join(workspace, name)))
    if name not in _said:
        _said.add(name)
        (say or _stderr)(f"warning: {line}")
    return line


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


class _StatepointErrorFilter(logging.Filter):
    """Drops signac's own log line about a state point it cannot read: aexp reports that job
    itself, in one line that says what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Error while trying to access state point file")


def quiet_statepoint_errors() -> None:
    """Keep signac from logging, besides raising, each state point it cannot read (idempotent)."""
    log = logging.getLogger("signac.project")
    if not any(isinstance(f, _StatepointErrorFilter) for f in log.filters):
        log.addFilter(_StatepointErrorFilter())


__all__ = [
    "Repair",
    "damage_line",
    "damaged_jobs",
    "holds_results",
    "leave_out",
    "left_out",
    "quiet_statepoint_errors",
    "readable_job_dirs",
    "rebuild_statepoint",
    "repair_statepoint",
    "report_damage",
    "statepoint_problem",
    "usable_job_dirs",
]
