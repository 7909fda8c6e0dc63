"""The runs a project has exported as traces, read back from their files (`list_runs`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from aexp.journal import JOURNAL_DIR
from aexp.trackers.base import RunRecord
from aexp.trackers.otel.files import TRACES_FILE, read_lines

_STATES = ("bound", "running", "finished", "failed", "preempted")
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def value_of(encoded: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as a Python value (the inverse of trace.any_value)."""
    if "stringValue" in encoded:
        return encoded["stringValue"]
    if "boolValue" in encoded:
        return bool(encoded["boolValue"])
    if "intValue" in encoded:
        return int(encoded["intValue"])
    if "doubleValue" in encoded:
        value = encoded["doubleValue"]
        return _NONFINITE.get(value, value) if isinstance(value, str) else float(value)
    if "arrayValue" in encoded:
        return [value_of(v) for v in (encoded["arrayValue"] or {}).get("values") or []]
    return None


def attribute_map(attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP JSON attributes as {key: value}."""
    return {a["key"]: value_of(a.get("value") or {}) for a in attributes if "key" in a}


def exported_runs(workspace: Path, *, project: str, group_prefix: str = "") -> list[RunRecord]:
    """One RunRecord per traces file under `workspace` whose run is in `project` and whose group
    starts with `group_prefix`, from the last version of its run span; sorted by group, id."""
    records = []
    for path in sorted(workspace.glob(f"*/{JOURNAL_DIR}/*/{TRACES_FILE}")):
        root: tuple[dict[str, Any], dict[str, Any]] | None = None
        for line in read_lines(path):
            for resource, span in line.spans():
                if not span.get("parentSpanId"):
                    root = (attribute_map(resource), attribute_map(span.get("attributes") or []))
        if root is None:
            continue
        resource, attrs = root
        group = str(attrs.get("cicd.pipeline.name") or "")
        if resource.get("aexp.project") != project or not group.startswith(group_prefix):
            continue
        state = attrs.get("aexp.run.state")
        records.append(
            RunRecord(
                id=str(resource.get("aexp.run.id") or path.parent.name),
                project=project,
                group=group,
                state=state if state in _STATES else "unknown",
                url=attrs.get("cicd.pipeline.run.url.full"),
                tags=list(attrs.get("aexp.run.tags") or []),
                last_metrics={
                    key.removeprefix("aexp.summary."): value
                    for key, value in attrs.items()
                    if key.startswith("aexp.summary.") and key != "aexp.summary.dropped"
                },
                exit_code=attrs.get("aexp.run.exit_code"),
                path=str(path),
            )
        )
    return sorted(records, key=lambda r: (r.group, r.id))


__all__ = ["attribute_map", "exported_runs", "value_of"]
