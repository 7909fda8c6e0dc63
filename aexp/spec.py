"""What a run is made of, derived from its job: the group, the tags and the config.

spec_of(statepoint, limina, job_id, group_by)   the pure rule (docs/job-document.md)
run_spec(job)                                   the rule applied to a job, with its
                                                project's `[tracker] group_by`
project_settings(job)                           the settings of the job's project
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aexp.agent.actor import config_of
from aexp.errors import BindingError
from aexp.jobdoc import read_doc
from aexp.jobs import project_root_of
from aexp.validate import GROUP_MAX, TAG_MAX, shorten

if TYPE_CHECKING:
    from aexp.settings import Settings


def spec_of(
    statepoint: Mapping[str, Any],
    limina: Mapping[str, Any] | None = None,
    job_id: str | None = None,
    group_by: Sequence[str] = (),
    actor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Group, tags and config of a run, derived from a job's state point and Limina link, and
    the actor who started it (when given).

    group  "<hypothesis>/<experiment>/<condition>" ("<experiment>/<condition>" without a
           hypothesis), at most 128 characters. The condition part is, without `group_by`, the
           state point's "condition" value, else "default"; with `group_by` (state-point keys,
           dotted for nested ones; `[tracker] group_by`) it is "key=value" per key joined by
           "," (`lr=0.1,seed=0`), values written as `--sp` writes them (strings bare, the rest
           as JSON; `-` for a key the state point lacks);
    tags   the parts of the group, one per group_by key, each at most 64 characters
           (aexp.validate.shorten);
    config the flattened state point (nested keys joined with ".") plus `job_id`,
           `limina.experiment_id` and `limina.hypothesis_id` (when there is one), and
           `aexp.actor.kind`, `.id`, `.session_id`, `.tool` of `actor` (aexp.agent.actor), so a
           run found in a tracker names the person or agent session that started it.
    """
    limina = limina or {}
    hypothesis = limina.get("hypothesis_id") or statepoint.get("hypothesis_id")
    experiment = str(limina.get("experiment_id") or statepoint.get("experiment_id") or "E")
    flat = _flatten(statepoint)
    if group_by:
        conditions = [f"{key}={_group_value(flat, statepoint, key)}" for key in group_by]
    else:
        conditions = [str(statepoint.get("condition", "default")) or "default"]
    parts = [str(hypothesis)] if hypothesis else []
    parts.append(experiment)
    config = {
        key: value for key, value in flat.items() if key not in ("hypothesis_id", "experiment_id")
    }
    if job_id is not None:
        config["job_id"] = job_id
    config["limina.experiment_id"] = experiment
    if hypothesis:
        config["limina.hypothesis_id"] = str(hypothesis)
    config.update(config_of(actor))
    return {
        "group": shorten("/".join([*parts, ",".join(conditions)]), GROUP_MAX),
        "tags": [shorten(part, TAG_MAX) for part in [*parts, *conditions]],
        "config": config,
    }


def _group_value(flat: Mapping[str, Any], statepoint: Mapping[str, Any], key: str) -> str:
    value = flat.get(key, statepoint.get(key, _ABSENT))
    if value is _ABSENT:
        return "-"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, separators=(",", ":"))


_ABSENT = object()


def project_settings(job: Any) -> Settings:
    """The settings (`aexp.settings.load_settings`) of the project that holds `job`: the
    directory above its workspace (aexp.jobs.project_root_of). Read once per change of its
    signac.rc or of an AEXP_* override (aexp.settings.cached_settings: one `stat` per call).
    Raises SettingsError for a malformed signac.rc."""
    from aexp.settings import cached_settings

    return cached_settings(project_root_of(job))


def project_group_by(job: Any) -> tuple[str, ...]:
    """`[tracker] group_by` of the job's project (`()` when not set; `project_settings`)."""
    return project_settings(job).group_by


def run_spec(
    job: Any,
    group_by: Sequence[str] | None = None,
    doc: Mapping[str, Any] | None = None,
    actor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`spec_of` the job: group, tags and config of its run. `group_by=None`: the project's
    `[tracker] group_by` (`project_group_by`); `doc`: the job's document when the caller has
    read it (its `limina`, its run's `started_by`); `actor`: who starts the run, named in its
    config (None: the bound run's `started_by`, if any).

    Raises BindingError when signac cannot read the job's state point (its file is missing or
    damaged), saying how to rebuild it (aexp.statepoints.damage_line).
    """
    if group_by is None:
        group_by = project_group_by(job)
    if doc is None:
        doc = read_doc(job)
    if actor is None and isinstance(doc.get("tracker"), Mapping):
        actor = doc["tracker"].get("started_by")
    return spec_of(_statepoint(job), doc.get("limina"), job.id, group_by, actor)


def _statepoint(job: Any) -> Mapping[str, Any]:
    try:
        return job.cached_statepoint
    except Exception as exc:  # signac's JobsCorruptedError, or KeyError for a vanished job
        from signac.errors import JobsCorruptedError  # signac is loaded: job is a signac Job

        if not isinstance(exc, JobsCorruptedError | KeyError):
            raise
        from aexp.statepoints import damage_line

        raise BindingError(damage_line(job)) from None


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def run_tags(spec: Mapping[str, Any], extra: Iterable[str] = ()) -> list[str]:
    """The spec's tags, then the extra ones (shortened like them), each once."""
    return list(dict.fromkeys([*spec["tags"], *(shorten(str(t), TAG_MAX) for t in extra if t)]))


__all__ = [
    "project_group_by",
    "project_settings",
    "run_spec",
    "run_tags",
    "spec_of",
]
