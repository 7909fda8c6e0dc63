"""The JSON documents of the reporting commands: one top-level object each, with a versioned
`schema` name (a JSON Schema of each is in aexp/schemas/), strict JSON (NaN and infinities as
the strings "NaN", "Infinity", "-Infinity").

    aexp.runs/1          `aexp runs --json`                one object per job under "jobs"
    aexp.runs.groups/1   `aexp runs --group-by --json`     one object per configuration
    aexp.best/1          `aexp best --json`
    aexp.compare/1       `aexp compare --json`

A document's members may be iterators (the jobs of a 100,000-job table): `write_json` writes
them one item at a time, so printing costs no more memory than the table itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import IO, Any

from aexp.results.groups import COUNTS, Groups
from aexp.results.spread import CI_KIND, CONFIDENCE
from aexp.results.table import Table

RUNS_SCHEMA = "aexp.runs/1"
GROUPS_SCHEMA = "aexp.runs.groups/1"
BEST_SCHEMA = "aexp.best/1"
COMPARE_SCHEMA = "aexp.compare/1"


def schema_of(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of document `name` (e.g. RUNS_SCHEMA, "aexp.runs/1"),
    from the package's `aexp/schemas/`. Raises FileNotFoundError for an unknown name."""
    from importlib.resources import files

    base = name.rsplit("/", 1)[0]
    return json.loads(files("aexp").joinpath("schemas", f"{base}.schema.json").read_text())


def strict(value: Any) -> Any:
    """`value` with non-finite floats as strict JSON writes them (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def statistics_note() -> dict[str, Any]:
    """How the groups' statistics are computed (the same in every document that has them)."""
    return {
        "over": "finished runs",
        "std": "sample (n - 1)",
        "ci": CI_KIND,
        "confidence": CONFIDENCE,
    }


def runs_document(table: Table, *, selection: str) -> dict[str, Any]:
    """`aexp runs --json`: the table's rows (built with `details=True`) as job objects."""

    def jobs() -> Iterator[dict[str, Any]]:
        columns = table.columns
        for values, details in table.details():
            row = dict(zip(columns, values, strict=True))
            yield strict(
                {
                    "job_id": row["job"],
                    "experiment_id": details.get("experiment_id"),
                    "hypothesis_id": details.get("hypothesis_id"),
                    "group": row["group"],
                    "backend": details.get("backend"),
                    "backends": details.get("backends", []),
                    "offline": details.get("offline"),
                    "run_id": row["run"],
                    "state": details.get("state", row["state"]),
                    "stalled": details.get("stalled", False),
                    "url": row["url"],
                    "urls": details.get("urls", {}),
                    "synced": row["synced"],
                    "synced_at": details.get("synced_at"),
                    "status": details.get("status"),
                    "attempts": details.get("attempts"),
                    "exit_code": details.get("exit_code"),
                    "params": {key: row[key] for key in table.params},
                    "metrics": {m.name: row[m.name] for m in table.metrics},
                }
            )

    return {
        "schema": RUNS_SCHEMA,
        "selection": selection,
        "count": len(table),
        "params": table.params,
        "metrics": [m.name for m in table.metrics],
        "jobs": jobs(),
    }


def group_object(group: Any, metrics: list[str]) -> dict[str, Any]:
    """One configuration: its key values, its runs by state, each metric's spread."""
    return strict(
        {
            "config": group.config,
            "runs": group.runs,
            "states": dict(sorted(group.states.items())),
            "metrics": {name: group.spread(name).as_json() for name in metrics},
        }
    )


def groups_document(groups: Groups, *, selection: str) -> dict[str, Any]:
    """`aexp runs --group-by --json`."""
    names = [m.name for m in groups.metrics]
    return {
        "schema": GROUPS_SCHEMA,
        "selection": selection,
        "group_by": groups.group_by or None,
        "keys": groups.keys,
        "seed_keys": groups.seed_keys,
        "metrics": names,
        "counts": list(COUNTS),
        "statistics": statistics_note(),
        "runs": groups.runs,
        "count": len(groups.groups),
        "groups": [group_object(g, names) for g in groups.groups],
    }


def best_document(best: Any, *, selection: str) -> dict[str, Any]:
    """`aexp best --json`: the winner with its runs, the runner-up, the gap, the unranked."""
    from aexp.results.ranking import DIRECTIONS, run_rows

    name = best.metric.name
    seeds = best.groups.seed_keys

    def side(pair: Any, with_runs: bool) -> dict[str, Any] | None:
        if pair is None:
            return None
        group, _ = pair
        found = group_object(group, [name])
        found["spread"] = found.pop("metrics")[name]
        if with_runs:
            found["jobs"] = strict(run_rows(group, name, seeds))
        return found

    gap = best.gap
    return {
        "schema": BEST_SCHEMA,
        "selection": selection,
        "metric": name,
        "direction": best.direction,
        "direction_means": DIRECTIONS[best.direction],
        "keys": best.groups.keys,
        "group_by": best.groups.group_by or None,
        "seed_keys": seeds,
        "statistics": statistics_note(),
        "ranked": len(best.ranked),
        "best": side(best.winner, True),
        "runner_up": side(best.runner_up, True),
        "gap": None if gap is None else strict(gap.as_json()),
        "tie": best.tie,
        "unranked": [strict(g.config) for g in best.unranked],
    }


def compare_document(comparison: Any) -> dict[str, Any]:
    """`aexp compare --json`: both sides, their state-point differences, every metric."""

    def side(one: Any) -> dict[str, Any]:
        return strict(
            {
                "label": one.label,
                "kind": one.kind,
                "jobs": [r.job_id for r in one.records],
                "states": one.states(),
                "statepoint": one.statepoint,
                "varies": one.varies,
            }
        )

    return {
        "schema": COMPARE_SCHEMA,
        "a": side(comparison.a),
        "b": side(comparison.b),
        "differs": {k: strict(list(v)) for k, v in comparison.differs.items()},
        "same": strict(comparison.same),
        "statistics": statistics_note(),
        "metrics": [
            strict(
                {
                    "name": m.name,
                    "a": m.a.as_json(),
                    "b": m.b.as_json(),
                    "b_minus_a": m.gap.as_json(),
                }
            )
            for m in comparison.metrics
        ],
    }


def write_json(document: Mapping[str, Any], out: IO[str]) -> None:
    """Write `document` as indented JSON; members that are iterators are written one item at
    a time (each item a JSON value)."""
    out.write("{")
    first = True
    for key, value in document.items():
        out.write(("\n" if first else ",\n") + f"  {json.dumps(key)}: ")
        first = False
        if isinstance(value, Iterator):
            out.write("[")
            empty = True
            for item in value:
                text = json.dumps(item, indent=2, default=str).replace("\n", "\n    ")
                out.write(("\n    " if empty else ",\n    ") + text)
                empty = False
            out.write("]" if empty else "\n  ]")
        else:
            out.write(json.dumps(strict(value), indent=2, default=str).replace("\n", "\n  "))
    out.write("\n}\n" if not first else "}\n")


__all__ = [
    "BEST_SCHEMA",
    "COMPARE_SCHEMA",
    "GROUPS_SCHEMA",
    "RUNS_SCHEMA",
    "best_document",
    "compare_document",
    "group_object",
    "groups_document",
    "runs_document",
    "schema_of",
    "statistics_note",
    "strict",
    "write_json",
]
