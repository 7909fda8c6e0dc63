"""The JSON contract: every document a reporting command prints with `--json`, and every MCP
tool returns, names its schema and version in its `schema` member (`"aexp.status/1"`).

A JSON Schema (draft 2020-12) of each is shipped in the package, `aexp/schemas/<name>.json`
(docs/json.md is their prose). A breaking change to a document (a member removed or renamed, a
type changed) is a new version (`aexp.status/2`) with a schema file of its own; adding a member
is not. The documents are built once, by library functions (aexp.reports, aexp.writes); the
CLI prints them and the MCP server returns them, so both always say the same thing.

    document("aexp.status/1", jobs=[...])   {"schema": "aexp.status/1", "jobs": [...]}
    schema_of("aexp.status/1")              the JSON Schema, parsed
    check(doc)                              ContractError unless `doc` is valid for its schema

`check` needs the `jsonschema` package (installed with the `[mcp]` and `[test]` extras).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aexp.errors import AexpError

# Every document of the contract: schema name -> what prints or returns it.
SCHEMAS: dict[str, str] = {
    "aexp.status/1": "aexp status --json; MCP status",
    "aexp.status.changes/1": "aexp status --json --since CURSOR; MCP status with since",
    "aexp.runs/1": "aexp runs --json; MCP runs",
    "aexp.runs.groups/1": "aexp runs --group-by --json; MCP runs with group_by",
    "aexp.best/1": "aexp best --json",
    "aexp.compare/1": "aexp compare --json",
    "aexp.show/1": "aexp show --json; MCP show",
    "aexp.curve/1": "MCP curve",
    "aexp.diagnose/1": "aexp diagnose --json; MCP diagnose",
    "aexp.new-run/1": "aexp new-run --json; MCP create_sweep once applied",
    "aexp.rearm/1": "aexp rearm --json; MCP rearm once applied",
    "aexp.rerun/1": "aexp rerun --json; MCP rerun once applied",
    "aexp.remove/1": "aexp remove --json; MCP remove once applied",
    "aexp.sync-offline/1": "aexp sync-offline --json; MCP sync_plan, and sync once applied",
    "aexp.run/1": "python project.py run --json (the pass summary)",
    "aexp.run-here/1": "MCP run_here once applied, and run_progress",
    "aexp.submit/1": "MCP submit once applied",
    "aexp.plan/1": "every write command with --plan; every MCP write tool",
}


class ContractError(AexpError):
    """A document that does not follow its schema (a bug of aexp, or an unknown schema)."""


def document(schema: str, **members: Any) -> dict[str, Any]:
    """A document of the contract: `{"schema": schema, **members}`. Raises ContractError for a
    schema name that is not in SCHEMAS."""
    if schema not in SCHEMAS:
        raise ContractError(f"{schema!r} is not a schema of aexp's JSON contract.")
    return {"schema": schema, **members}


def plain(value: Any) -> Any:
    """`value` as plain JSON types: mappings as dicts with string keys, tuples as lists
    (signac hands out read-only mapping views)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def schema_file(schema: str) -> str:
    """The file name of a schema in aexp/schemas: "aexp.status/1" -> "aexp.status.v1.json"."""
    name, _, version = schema.partition("/")
    return f"{name}.v{version}.json"


def _read(file: str) -> dict[str, Any]:
    from importlib import resources

    return json.loads(resources.files("aexp.schemas").joinpath(file).read_text("utf-8"))


def _refs(node: Any) -> set[str]:
    """The other schema files a schema refers to (`"$ref": "aexp.status.v1.json#/..."`)."""
    if isinstance(node, dict):
        found = set().union(*(_refs(v) for v in node.values())) if node else set()
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            found.add(ref.partition("#")[0])
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _pointed(node: Any, here: str | None) -> Any:
    """`node` with every `$ref` made a pointer into the bundle: `F#/x` -> `#/$defs/F/x`, and,
    inside the schema of file `here`, `#/x` -> `#/$defs/here/x`."""
    if isinstance(node, list):
        return [_pointed(v, here) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _pointed(v, here) for k, v in node.items() if k not in ("$id", "$schema") or here is None
    }
    ref = node.get("$ref")
    if isinstance(ref, str):
        file, _, fragment = ref.partition("#")
        if file:
            out["$ref"] = f"#/$defs/{file}{fragment}"
        elif here is not None:
            out["$ref"] = f"#/$defs/{here}{fragment}"
    return out


def _bundle(root: dict[str, Any], own: set[str]) -> dict[str, Any]:
    """`root` with every schema file it refers to (but those in `own`) in its `$defs`, and every
    `$ref` a JSON pointer within the document: one self-contained schema that any validator,
    an MCP client's included, resolves without a registry."""
    embedded: dict[str, Any] = {}
    todo = _refs(root) - own
    while todo:
        file = todo.pop()
        if file not in embedded:
            schema = _read(file)
            todo |= _refs(schema) - set(embedded) - own - {file}
            embedded[file] = _pointed(schema, file)
    bundled = _pointed(root, None)
    if embedded:
        bundled["$defs"] = {**bundled.get("$defs", {}), **embedded}
    return bundled


@functools.cache
def schema_of(schema: str) -> dict[str, Any]:
    """The JSON Schema of `schema`, self-contained (`_bundle`: a schema file it refers to is in
    its `$defs`, every `$ref` a pointer within it). Raises ContractError for an unknown name."""
    if schema not in SCHEMAS:
        raise ContractError(f"{schema!r} is not a schema of aexp's JSON contract.")
    return _bundle(_read(schema_file(schema)), {schema_file(schema)})


@functools.cache
def schema_of_any(*schemas: str) -> dict[str, Any]:
    """One JSON Schema that a document of any of `schemas` satisfies (and no other), for a
    tool that returns one of several documents; self-contained as `schema_of`'s."""
    for name in schemas:
        schema_of(name)  # ContractError for an unknown one
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://schemas.aexp.invalid/any." + ".".join(sorted(schemas)) + ".json",
        "type": "object",
        "oneOf": [{"$ref": schema_file(name)} for name in schemas],
    }
    return _bundle(root, set())


def check(doc: Mapping[str, Any]) -> None:
    """Raise ContractError unless `doc` names a known schema and is valid for it (jsonschema,
    draft 2020-12); the message names the first invalid member's path."""
    import jsonschema

    name = doc.get("schema") if isinstance(doc, Mapping) else None
    if not isinstance(name, str):
        raise ContractError("the document has no schema name.")
    validator = jsonschema.Draft202012Validator(schema_of(name))
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ContractError(f"{name} document invalid at {where}: {error.message}")


__all__ = [
    "SCHEMAS",
    "ContractError",
    "check",
    "document",
    "plain",
    "schema_file",
    "schema_of",
    "schema_of_any",
]
