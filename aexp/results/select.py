"""Which jobs a results view shows: filters by state point, experiment, hypothesis and state.

    Selection(where={"lr": [0.1, 0.01]}, experiment="E018", states=("finished",))

`where` maps a state-point key (dotted for nested keys: `optimizer.name`) to the values it may
take; a job matches when every key has one of its values. Values compare as JSON values: a
number equals a number of the same value (`1 == 1.0`), booleans only booleans, strings only
strings, `null` only `null`; a job without the key never matches. The command line writes these
filters as `--where key=value` (typed like `--sp`, aexp/cli/sweep.py `parse_where`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aexp.errors import AexpError
from aexp.schema import STATES

# The states a job can be selected by: a binding's state, or these of the job itself
# (aexp.state.JobState.shown: `stale` is a running job whose attempt is known dead, `stalled` a
# live one whose journal has gone silent for too long).
UNBOUND, CORRUPT, STALE, STALLED = "unbound", "corrupt", "stale", "stalled"
SELECTABLE_STATES = (*STATES, STALE, STALLED, UNBOUND, CORRUPT)
_MISSING = object()


class SelectionError(AexpError):
    """A selection, column or metric that cannot be understood (one sentence, exit code 2)."""


def lookup(statepoint: Mapping[str, Any], key: str, default: Any = _MISSING) -> Any:
    """The value of dotted `key` in a (nested) state point; `default` when it is absent.

    A key that exists literally (signac forbids dots in keys, but older data may have them) wins
    over the nested reading.
    """
    if key in statepoint:
        return statepoint[key]
    node: Any = statepoint
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (bool is not a number here), everything else by type and
    value (lists and objects element by element)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Selection:
    """The jobs to show: all of them, narrowed by each filter that is given.

    where       {dotted state-point key: [accepted values]}
    experiment  the state point's `experiment_id`
    hypothesis  the state point's `hypothesis_id`
    states      the job's state: a binding state (bound, running, ...), `stale` (running, its
                attempt known dead), `stalled` (running, its journal silent too long),
                `unbound` or `corrupt`
    job_ids     only these jobs (full ids)
    """

    where: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    experiment: str | None = None
    hypothesis: str | None = None
    states: tuple[str, ...] = ()
    job_ids: frozenset[str] | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in self.states if s not in SELECTABLE_STATES]
        if unknown:
            raise SelectionError(
                f"unknown state {unknown[0]!r}; known states: {', '.join(SELECTABLE_STATES)}."
            )

    def matches_statepoint(self, statepoint: Mapping[str, Any]) -> bool:
        """The filters that need only the state point (checked before the document is read)."""
        if self.experiment is not None and statepoint.get("experiment_id") != self.experiment:
            return False
        if self.hypothesis is not None and statepoint.get("hypothesis_id") != self.hypothesis:
            return False
        for key, accepted in self.where.items():
            value = lookup(statepoint, key)
            if value is _MISSING or not any(same_value(value, a) for a in accepted):
                return False
        return True

    def matches_state(self, shown: str) -> bool:
        """Whether a job whose state every view prints as `shown` (aexp.state.JobState.shown:
        `stale`, `stalled` or the job's state) is selected: `running` is a live attempt that
        progresses, as in `aexp status --state`."""
        return not self.states or shown in self.states

    def describe(self) -> str:
        """The filters in words, for titles: "E018, lr=0.1|0.01, finished" ("" for all jobs)."""
        parts: list[str] = []
        if self.hypothesis:
            parts.append(self.hypothesis)
        if self.experiment:
            parts.append(self.experiment)
        for key, values in self.where.items():
            parts.append(f"{key}={'|'.join(format_value(v) for v in values)}")
        if self.states:
            parts.append("|".join(self.states))
        if self.job_ids is not None:
            parts.append(f"{len(self.job_ids)} job(s) named")
        return ", ".join(parts)


def format_value(value: Any) -> str:
    """A state-point value as the `--sp` grammar writes it: strings bare, the rest as JSON."""
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)


class VaryingKeys:
    """The dotted state-point keys whose value differs between the state points added so far
    (a key missing from some counts as varying), in the order they first appeared. Holds one
    value per key, however many state points are added."""

    def __init__(self) -> None:
        self._first: dict[str, Any] = {}  # each key's first value, in order of appearance
        self._present: dict[str, int] = {}  # in how many state points each key appears
        self._varying: set[str] = set()
        self.count = 0

    def add(self, flat: Mapping[str, Any]) -> None:
        """Add one state point, flattened (`flatten`)."""
        self.count += 1
        first, present, varying = self._first, self._present, self._varying
        for key, value in flat.items():
            present[key] = present.get(key, 0) + 1
            if key not in first:
                first[key] = value
            elif key not in varying and not same_value(first[key], value):
                varying.add(key)

    def varying(self) -> list[str]:
        """The varying keys, in order of first appearance."""
        varying = self._varying | {k for k, n in self._present.items() if n < self.count}
        return [key for key in self._first if key in varying]

    def all_keys(self) -> list[str]:
        """Every key seen, in order of first appearance."""
        return list(self._first)


def varying_keys(statepoints: Iterable[Mapping[str, Any]]) -> list[str]:
    """The dotted keys whose value is not the same in every state point (a key missing from some
    counts as varying), in the order they first appear."""
    seen = VaryingKeys()
    for statepoint in statepoints:
        seen.add(flatten(statepoint))
    return seen.varying()


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested state point as one level of dotted keys (`{"a": {"b": 1}}` -> `{"a.b": 1}`);
    an empty mapping stays a value."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


__all__ = [
    "CORRUPT",
    "SELECTABLE_STATES",
    "UNBOUND",
    "Selection",
    "SelectionError",
    "VaryingKeys",
    "flatten",
    "format_value",
    "lookup",
    "same_value",
    "varying_keys",
]
