"""The `--sp` grammar of `aexp new-run`: `parse_sp` turns `key=value[,...]` arguments into the
state points of a sweep (their cross product). docs/cli.md ("The `--sp` grammar") is its manual.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from aexp.errors import UsageError

MAX_SWEEP = 10_000  # jobs one `new-run` may create; a typo in a range should not make millions

_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_RANGE = re.compile(r"^([+-]?\d+)\.\.([+-]?\d+)$")
_QUOTES = "\"'"
_RESERVED = ("experiment_id", "hypothesis_id")
# Bare words that look like a typed value in another language (Python, YAML, shell) but are
# strings in this grammar: the spelling that would have given the value the user meant.
_LOOKALIKES = {
    word: hint
    for words, hint in (
        (("True", "TRUE", "False", "FALSE"), "write true or false for a boolean"),
        (("None", "Null", "NULL", "none", "nil"), "write null for a null value"),
        (
            ("nan", "NaN", "inf", "-inf", "+inf", "Infinity", "-Infinity"),
            "state points hold finite numbers only",
        ),
    )
    for word in words
}
Warn = Callable[[str], None]


def _split(spec: str, text: str, sep: str, flag: str = "--sp") -> list[str]:
    """Split `text` at `sep` where it is not inside a quoted string."""
    parts, current, quote = [], [], None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in _QUOTES:
            quote = char
            current.append(char)
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote:
        raise UsageError(f"{flag} {spec!r}: a {quote} quote is not closed.")
    parts.append("".join(current))
    return parts


def _values(
    spec: str, key: str, text: str, flag: str = "--sp", warn: Warn | None = None
) -> list[Any]:
    """The value(s) of one alternative: a typed scalar, a quoted string, or a range.

    A bare string that a tired user likely meant as something else (`lr=0.1;seed=1`, `a=b=c`,
    `flag=True`) is kept as the string it is, and `warn` is told which value it became.
    """
    value = text.strip()
    if not value:
        raise UsageError(
            f'--sp {spec!r}: {key} has an empty value; write {key}="" for an empty string.'
        )
    if value[0] in _QUOTES:
        if len(value) < 2 or value[-1] != value[0] or value[0] in value[1:-1]:
            raise UsageError(f"{flag} {spec!r}: the quotes of {key}'s value {value} do not match.")
        return [value[1:-1]]
    if any(q in value for q in _QUOTES):
        raise UsageError(
            f"{flag} {spec!r}: {key}'s value {value} has a quote inside it; quote the whole value."
        )
    if ".." in value:
        match = _RANGE.match(value)
        if not match:
            raise UsageError(
                f"{flag} {spec!r}: {key}={value} is not a range START..END of whole numbers "
                f'(quote it, {key}="{value}", if you meant a string).'
            )
        start, end = int(match.group(1)), int(match.group(2))
        if start > end:
            raise UsageError(
                f"{flag} {spec!r}: the range {value} is empty (START must not exceed END)."
            )
        if end - start >= MAX_SWEEP:
            raise UsageError(
                f"{flag} {spec!r}: the range {value} has more than {MAX_SWEEP} values; "
                "split the sweep into several commands."
            )
        return list(range(start, end + 1))
    if value in ("true", "false"):
        return [value == "true"]
    if value == "null":
        return [None]
    if _INT.match(value):
        return [int(value)]
    if _FLOAT.match(value):
        return [float(value)]
    if warn is not None:
        hint = _string_hint(value)
        if hint:
            warn(f"{flag} {spec!r}: {key}={value} became the string {value!r} ({hint}).")
    return [value]


def _string_hint(value: str) -> str | None:
    """Why a bare string value is probably not what was meant, or None when it looks intended."""
    if value in _LOOKALIKES:
        return _LOOKALIKES[value]
    if ";" in value:
        return "separate key=value pairs with ',', not ';'"
    if "=" in value:
        return "separate key=value pairs with ','; quote the value if the '=' is part of it"
    return None


def parse_sp(specs: Sequence[str], warn: Warn | None = None) -> list[dict[str, Any]]:
    """The state points (cross product) described by the `--sp` arguments; see docs/cli.md.

    Each argument is `key=value[,key=value...]`; a value is a number, true/false, null, a
    quoted string or a bare string; `A|B|C` lists alternatives and `START..END` an inclusive
    range of whole numbers; `a.b=1` sets the nested key {"a": {"b": 1}}. `warn(sentence)` is
    called once for each bare string that was probably meant otherwise (`lr=0.1;seed=1`,
    `flag=True`): it stays a string. Raises UsageError.
    """
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        if not spec.strip():
            raise UsageError("--sp '' is empty; write key=value[,key=value...].")
        for pair in _split(spec, spec, ","):
            pair = pair.strip()
            if not pair:
                raise UsageError(f"--sp {spec!r} has an empty key=value pair (check the commas).")
            if "=" not in pair:
                raise UsageError(f"--sp {spec!r}: {pair!r} has no '='; write key=value.")
            key, _, value = pair.partition("=")
            key = key.strip()
            if not key:
                raise UsageError(f"--sp {spec!r}: {pair!r} has an empty key.")
            if not all(_KEY.match(part) for part in key.split(".")):
                raise UsageError(
                    f"--sp {spec!r}: key {key!r} may only hold letters, digits, '_' and '-' "
                    "('.' nests keys)."
                )
            if key in _RESERVED:
                flag = "--" + key.split("_")[0]
                raise UsageError(f"--sp {spec!r}: set {key} with {flag}, not --sp.")
            if key in axes:
                raise UsageError(f"--sp {spec!r}: {key} is given twice.")
            alternatives = _split(spec, value, "|")
            values: dict[str, Any] = {}  # by JSON text: 1, 1.0, true and "1" stay distinct
            for alternative in alternatives:
                for item in _values(spec, key, alternative, warn=warn):
                    values.setdefault(json.dumps(item), item)
            axes[key] = list(values.values())
    for key in axes:
        for other in axes:
            if other.startswith(key + "."):
                raise UsageError(f"--sp: {key} is given both a value and a nested key {other}.")
    count = 1
    for values in axes.values():
        count *= len(values)
    if count > MAX_SWEEP:
        raise UsageError(
            f"--sp describes more than {MAX_SWEEP} jobs; split the sweep into several commands."
        )
    points = []
    for combo in itertools.product(*axes.values()):
        point: dict[str, Any] = {}
        for key, value in zip(axes, combo, strict=True):
            *parents, leaf = key.split(".")
            node = point
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        points.append(point)
    return points


def parse_where(specs: Sequence[str], warn: Warn | None = None) -> dict[str, list[Any]]:
    """The state-point filters of `--where` arguments: {dotted key: [accepted values]}.

    The grammar of `--sp` (docs/cli.md): `key=value[,key=value...]`, typed values, `A|B`
    alternatives and `START..END` ranges; a job matches when each key has one of its values
    (aexp.results.select). `experiment_id` and `hypothesis_id` may be named. `warn` as for
    `parse_sp`. Raises UsageError.
    """
    where: dict[str, list[Any]] = {}
    for spec in specs:
        if not spec.strip():
            raise UsageError("--where '' is empty; write key=value[,key=value...].")
        for pair in _split(spec, spec, ",", "--where"):
            pair = pair.strip()
            if "=" not in pair:
                raise UsageError(f"--where {spec!r}: {pair!r} has no '='; write key=value.")
            key, _, value = pair.partition("=")
            key = key.strip()
            if not key or not all(_KEY.match(part) for part in key.split(".")):
                raise UsageError(
                    f"--where {spec!r}: key {key!r} may only hold letters, digits, '_' and '-' "
                    "('.' for nested keys)."
                )
            if key in where:
                raise UsageError(
                    f"--where {spec!r}: {key} is given twice; list alternatives as {key}=A|B."
                )
            values: dict[str, Any] = {}
            for alternative in _split(spec, value, "|", "--where"):
                for item in _values(spec, key, alternative, "--where", warn):
                    values.setdefault(json.dumps(item), item)
            where[key] = list(values.values())
    return where
