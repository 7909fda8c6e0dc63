"""What MLflow accepts, checked without importing it: names, lengths, batch sizes.

Every limit here is MLflow 3.17.2's, from `mlflow/utils/validation.py` (the constants
`MAX_ENTITY_KEY_LENGTH`, `MAX_PARAM_VAL_LENGTH`, `MAX_TAG_VAL_LENGTH`,
`MAX_EXPERIMENT_NAME_LENGTH`, `MAX_PARAMS_TAGS_PER_BATCH`, `MAX_METRICS_PER_BATCH`,
`MAX_ENTITIES_PER_BATCH`, `MAX_BATCH_LOG_REQUEST_SIZE`, and the functions
`validate_param_and_metric_name`, `path_not_unique`, `_validate_experiment_name`). They are copied
rather than imported because `check_run` runs where MLflow is never imported (binding a job on a
compute node) and must cost nothing there. A newer MLflow that relaxes a limit only makes these
checks stricter than needed; tests/test_mlflow.py compares them with the installed MLflow.

Two kinds of names are treated differently, on purpose:
- param names (the run's config) are known before anything is written, so `check_run` refuses
  a name MLflow would refuse (TrackerUsageError naming the key and the rule);
- metric names, string-metric tags, label tags and artifact markers arrive in the training
  loop, where MLflow is not involved, and must never leave a run that cannot be synced: they
  are mapped by `mlflow_name` to a name MLflow accepts (documented, deterministic, so a live
  run and a replayed run get the same names).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from aexp.errors import TrackerUsageError

MAX_KEY_LENGTH = 250  # MAX_ENTITY_KEY_LENGTH: metric, param and tag names
MAX_PARAM_VALUE_LENGTH = 6000  # MAX_PARAM_VAL_LENGTH (longer values are truncated, with a warning)
MAX_TAG_VALUE_LENGTH = 8000  # MAX_TAG_VAL_LENGTH (longer values are truncated, with a warning)
MAX_EXPERIMENT_NAME_LENGTH = 500  # MAX_EXPERIMENT_NAME_LENGTH
MAX_PARAMS_PER_BATCH = 100  # MAX_PARAMS_TAGS_PER_BATCH
MAX_TAGS_PER_BATCH = 100  # MAX_PARAMS_TAGS_PER_BATCH
MAX_METRICS_PER_BATCH = 1000  # MAX_METRICS_PER_BATCH
MAX_ENTITIES_PER_BATCH = 1000  # MAX_ENTITIES_PER_BATCH: metrics + params + tags of one request
MAX_BATCH_BYTES = 1_000_000  # MAX_BATCH_LOG_REQUEST_SIZE: the JSON body of one REST request

# `validate_param_and_metric_name` (non-Windows): letters, digits, "_", "-", ".", " ", ":", "/".
# MLflow uses re.match with "$", which lets one trailing newline through; fullmatch is stricter.
_NAME = re.compile(r"[/\w.\- :]*")
_BAD_CHAR = re.compile(r"[^/\w.\- :]")
NAME_RULE = (
    "MLflow (3.17) names may only hold letters, digits, '_', '-', '.', ' ', ':' and '/', may not "
    f"be a path that normalises to another ('a//b', './a', '/a', '..'), and are at most "
    f"{MAX_KEY_LENGTH} characters"
)


def _path_not_unique(name: str) -> bool:
    # `path_not_unique`: names may become file names, so they must not normalise to others.
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def name_problem(name: str) -> str | None:
    """Why MLflow would refuse `name` as a metric, param or tag name, or None if it accepts it."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if not _NAME.fullmatch(name):
        bad = _BAD_CHAR.search(name)
        return f"it holds the character {bad.group() if bad else name!r}"
    if _path_not_unique(name):
        return f"it normalises to the path {posixpath.normpath(name)!r}"
    if len(name) > MAX_KEY_LENGTH:
        return f"it is {len(name)} characters long"
    return None


def mlflow_name(name: str) -> str:
    """`name` if MLflow accepts it, else a name it accepts, the same for the same input.

    Each character outside letters, digits and `_-. :/` becomes "_"; a name that would
    normalise to another path has its "/" replaced by "_" too and, if it then starts with "..",
    or is "." or empty, gets a leading "_"; a name longer than 250 characters keeps its first 241
    and ends with "-" and 8 hex digits of its SHA-1, so two long names stay apart. Two different
    names can still map to one ("a=b" and "a_b"); such metrics share one series.
    """
    if name_problem(name) is None:
        return name
    mapped = _BAD_CHAR.sub("_", name)
    if _path_not_unique(mapped):
        mapped = mapped.replace("/", "_")
        if mapped in ("", ".") or mapped.startswith(".."):
            mapped = "_" + mapped
    if len(mapped) > MAX_KEY_LENGTH:
        import hashlib  # rare: only names over 250 characters

        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        mapped = f"{mapped[: MAX_KEY_LENGTH - 9]}-{digest}"
    return mapped


def tag_value(value: str) -> str:
    """`value` cut to MLflow's tag-value limit (8,000 characters; MLflow itself would truncate
    it with a warning, or refuse it when MLFLOW_TRUNCATE_LONG_VALUES is false)."""
    return value if len(value) <= MAX_TAG_VALUE_LENGTH else value[:MAX_TAG_VALUE_LENGTH]


def param_value(value: Any) -> str:
    """A config value as MLflow stores a param: `str(value)` (what `mlflow.log_params` does)."""
    return value if isinstance(value, str) else str(value)


def flatten_config(config: Mapping[str, Any] | None) -> dict[str, str]:
    """The run's config as MLflow params: nested mappings joined with ".", values as strings.

    Raises TrackerUsageError for a non-string key or two paths that flatten to one key.
    """
    params: dict[str, str] = {}

    def walk(mapping: Mapping[str, Any], prefix: str) -> None:
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise TrackerUsageError(
                    f"config key {key!r} is not a string; MLflow params are named by strings."
                )
            name = prefix + key
            if isinstance(value, Mapping):
                walk(value, name + ".")
            elif name in params:
                raise TrackerUsageError(
                    f"config key {name!r} appears twice once nested keys are joined with '.'; "
                    "MLflow keeps one value per param."
                )
            else:
                params[name] = param_value(value)

    walk(config or {}, "")
    return params


def check_params(params: Mapping[str, str]) -> None:
    """Raise TrackerUsageError for the first param MLflow would refuse or truncate."""
    for key, value in params.items():
        problem = name_problem(key)
        if problem is not None:
            raise TrackerUsageError(
                f"config key {key!r} cannot be an MLflow param name ({problem}); {NAME_RULE}."
            )
        if len(value) > MAX_PARAM_VALUE_LENGTH:
            raise TrackerUsageError(
                f"config value of {key!r} is {len(value)} characters long; MLflow (3.17) keeps "
                f"at most {MAX_PARAM_VALUE_LENGTH} characters per param value and would cut it."
            )


def check_experiment_name(name: str) -> None:
    """Raise TrackerUsageError unless MLflow accepts `name` as an experiment name."""
    if not isinstance(name, str) or not name:
        raise TrackerUsageError("the tracker project is empty; MLflow needs an experiment name.")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise TrackerUsageError(
            f"the tracker project starting {name[:40]!r} is {len(name)} characters long; MLflow "
            "(3.17) "
            f"experiment names are at most {MAX_EXPERIMENT_NAME_LENGTH} characters."
        )


def check_tag_value(what: str, value: str) -> None:
    """Raise TrackerUsageError when `value` (described by `what`) exceeds MLflow's tag limit."""
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise TrackerUsageError(
            f"{what} is {len(value)} characters long; MLflow (3.17) keeps at most "
            f"{MAX_TAG_VALUE_LENGTH} characters per tag value and would cut it."
        )


__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_ENTITIES_PER_BATCH",
    "MAX_EXPERIMENT_NAME_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_PER_BATCH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAGS_PER_BATCH",
    "MAX_TAG_VALUE_LENGTH",
    "NAME_RULE",
    "check_experiment_name",
    "check_params",
    "check_tag_value",
    "flatten_config",
    "mlflow_name",
    "name_problem",
    "param_value",
    "tag_value",
]
