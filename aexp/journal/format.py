"""The journal's format: where a run's journal lives, timestamps, and strict-JSON metric values.

Non-finite floats are not JSON: a `log` event stores NaN, +inf and -inf as the strings "NaN",
"Infinity" and "-Infinity" and lists those keys under `nonfinite`, so that readers get the floats
back and strict readers (jq, browsers, MLflow's REST API) read every line.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOURNAL_DIR = "tracker_log"
JOURNAL_FILE = "events.jsonl"


def _strict_encoder() -> Callable[[Any], str]:
    """`json.JSONEncoder(allow_nan=False).encode`: JSON text with non-finite floats refused
    (ValueError) and unknown types refused (TypeError), compact separators `", "` and `": "`.

    Where CPython's C encoder exists it is called directly, with a fresh set of markers per
    call (the circular-reference check, and no state shared between threads): the same text
    without the two Python frames and the closure `JSONEncoder.encode` spends per call (every
    event of every journal, every job document written)."""
    from json.encoder import c_make_encoder, encode_basestring_ascii

    strict = json.JSONEncoder(allow_nan=False)
    if c_make_encoder is None:  # not CPython
        return strict.encode
    default, make = strict.default, c_make_encoder

    def encode(value: Any) -> str:
        chunks = make({}, default, encode_basestring_ascii, None, ": ", ", ", False, False, False)
        return "".join(chunks(value, 0))

    return encode


encode = _strict_encoder()
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def journal_path(job_path: str | os.PathLike, run_id: str) -> Path:
    """Where the journal of run `run_id` of the job at `job_path` lives."""
    return Path(job_path, JOURNAL_DIR, run_id, JOURNAL_FILE)


def journal_file(job_path: str, run_id: str) -> str:
    """`journal_path` as a string, made without a Path (each attempt needs it)."""
    return f"{job_path}{os.sep}{JOURNAL_DIR}{os.sep}{run_id}{os.sep}{JOURNAL_FILE}"


# The date and time of the current second, formatted once per second: `log` sits on the hot path
# of every training step, and datetime's own formatting costs more than the rest of a row.
_second: tuple[int, str] = (-1, "")


def now() -> str:
    """The current time as the journal writes it: ISO-8601 UTC with microseconds
    (`datetime.now(UTC).isoformat(timespec="microseconds")`, e.g. 2026-01-05T09:30:00.123456+00:00).
    """
    global _second
    t = time.time()
    whole = int(t)
    second, text = _second
    if whole != second:
        text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (whole, text)
    return f"{text}.{int((t - whole) * 1_000_000):06d}+00:00"


def encode_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`metrics` with non-finite floats replaced by "NaN"/"Infinity"/"-Infinity", and their keys.

    The returned dict is `metrics` itself when every value is finite (nothing to replace).
    """
    keys = [
        key
        for key, value in metrics.items()
        if type(value) is float and not math.isfinite(value)  # bool/int are always finite
    ]
    if not keys:
        return dict(metrics), []
    replaced = dict(metrics)
    for key in keys:
        value = replaced[key]
        replaced[key] = "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return replaced, keys


def decode_metrics(event: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics of a `log` event with non-finite floats restored."""
    metrics = event.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    keys = event.get("nonfinite")
    if not keys:
        return metrics
    restored = dict(metrics)
    for key in keys:
        if isinstance(key, str) and restored.get(key) in _NONFINITE:
            restored[key] = _NONFINITE[restored[key]]
    return restored


__all__ = [
    "JOURNAL_DIR",
    "JOURNAL_FILE",
    "decode_metrics",
    "encode",
    "encode_metrics",
    "journal_file",
    "journal_path",
    "now",
]
