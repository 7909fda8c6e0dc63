"""Input checked at the door: what signac or a tracker backend would refuse later is refused
before anything is written, in one sentence naming the value and the rule.

Rules and where they come from:

- State points (signac 2.4, `synced_collections`): keys are non-empty strings without dots, at
  every level; values are JSON data (strings, numbers, booleans, null, lists, objects). signac
  itself takes NaN and infinity but writes them as `NaN`/`Infinity`, which strict JSON readers
  reject, so aexp refuses non-finite numbers. signac refuses the rest only after it has created
  the job's directory; checking first leaves nothing behind.
- Tags and groups (W&B): a tag has 1 to 64 characters, a group at most 128. A longer one is
  shortened deterministically rather than refused (`shorten`): the same input always gives the
  same tag, so a sweep keeps one tag per condition.
- Anything else a backend refuses is its adapter's `check_run`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from aexp.errors import SettingsError, StatepointError

# W&B project names may not contain these characters (the server rejects them).
_BAD_PROJECT_CHARS = re.compile(r"[/\\#?%:]")
TAG_MAX = 64  # W&B: tags are 1-64 characters (longer ones are accepted offline, refused at sync)
GROUP_MAX = 128  # W&B: a run group has at most 128 characters
_HASH_CHARS = 8


def shorten(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its first characters, "~" and the first
    8 hex digits of its SHA-1, `limit` characters in all (deterministic, so still unique)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{text[: limit - _HASH_CHARS - 1]}~{digest}"


def validate_project_name(name: str, *, where: str = "project") -> str:
    """Return `name` if W&B would accept it as a project name, else raise SettingsError."""
    if not name or not name.strip():
        raise SettingsError(f"{where} is empty; give the tracker project a name.")
    if len(name) > 128 or _BAD_PROJECT_CHARS.search(name):
        raise SettingsError(
            f"{where} {name!r} is not a valid tracker project name "
            "(at most 128 characters, none of / \\ # ? % :)."
        )
    return name


def check_statepoint(statepoint: Mapping[str, Any]) -> None:
    """Raise StatepointError if signac or a strict JSON reader would refuse `statepoint`."""
    if not isinstance(statepoint, Mapping):
        raise StatepointError(
            f"a state point must be a mapping of names to values, not {_show(statepoint)}."
        )
    try:
        _check_mapping(statepoint, "")
    except RecursionError:  # a mapping or list that contains itself, or absurd nesting
        raise StatepointError(
            "the state point contains itself or is nested too deeply; JSON cannot store it."
        ) from None


def _check_mapping(mapping: Mapping[Any, Any], where: str) -> None:
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise StatepointError(
                f"state point key {_show(key)}{_at(where)} is not a string; signac accepts "
                "only string keys."
            )
        if not key:
            raise StatepointError(f"a state point key{_at(where)} is empty; give it a name.")
        if "." in key:
            raise StatepointError(
                f"state point key {key!r}{_at(where)} contains a dot; signac forbids dots in "
                "keys (nest a mapping instead: {'a': {'b': 1}})."
            )
        _check_value(value, f"{where}.{key}" if where else key)


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StatepointError(
                f"state point value {where}={value!r} is not a finite number; strict JSON cannot "
                "store it (give it as a string if you mean it)."
            )
        return
    if isinstance(value, Mapping):
        _check_mapping(value, where)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]")
        return
    raise StatepointError(
        f"state point value {where}={_show(value)} is a {type(value).__name__}; state points "
        "hold strings, numbers, booleans, null, lists and mappings."
    )


def _at(where: str) -> str:
    return f" (in {where})" if where else ""


def _show(value: Any, limit: int = 60) -> str:
    # One sentence stays one line: a large object (an array, a model) is cut short.
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["GROUP_MAX", "TAG_MAX", "check_statepoint", "shorten", "validate_project_name"]
