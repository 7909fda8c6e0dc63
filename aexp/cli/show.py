"""`aexp show`: everything about one job (state point, document, binding, each backend's sync
state, run files), found by job id, unique prefix or tracker run id.

What is synced is said per backend, from the job document (each backend's `synced_at`; W&B's
fragments as the document records them), never from the primary backend or W&B's marker files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aexp.cli.output import _dump, _plain, _section
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project
from aexp.errors import UsageError


def _run_files(job: Any, binding: dict[str, Any] | None) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    if binding is None:
        return files
    from aexp.binding import backend_parts

    parts = backend_parts(binding)
    events = Path(job.path, "tracker_log", binding["run_id"], "events.jsonl")
    if binding["backend"] == "noop" and events.exists():
        files.append({"path": str(events), "kind": "noop event log"})
    if "wandb" in parts:
        from aexp.wandb_offline import find_fragments

        part = parts["wandb"]
        recorded = (part.get("state") or {}).get("fragments") or {}
        in_flight = (part.get("inflight") or {}).get("fragments") or {}
        for folder in find_fragments(job.path):
            # What the job document records, not W&B's marker files (docs/sync.md).
            if folder.name in recorded:
                kind = "W&B offline run, synced"
            elif folder.name in in_flight:
                kind = "W&B offline run, upload in doubt (the next sync asks the server)"
            else:
                kind = "W&B offline run, not synced"
            files.append({"path": str(folder), "kind": kind})
    return files


def _sync_state(binding: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each backend of the run: whether it is synced from a login node at all, and whether it
    holds the run (its own `synced_at`, not the primary backend's)."""
    if binding is None:
        return {}
    from aexp.binding import backend_parts
    from aexp.sync.rules import backend_needs_sync

    offline = bool(binding.get("offline"))
    state = {}
    for name, part in backend_parts(binding).items():
        needs = backend_needs_sync(name, part, offline=offline)
        state[name] = {
            "synced_from_login_node": needs,
            "synced_at": part.get("synced_at"),
            "in_flight": bool(part.get("inflight")),
            "url": part.get("url"),
        }
    return state


def _sync_lines(state: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, s in state.items():
        if not s["synced_from_login_node"]:
            what = "fed during each attempt (nothing to sync)"
        elif s["synced_at"]:
            what = f"synced {s['synced_at']}"
        elif s["in_flight"]:
            what = "not synced: an upload is in doubt (the next sync asks the server first)"
        else:
            what = "not synced yet (aexp sync-offline)"
        lines.append(f"  {name:<8} {what}")
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    from aexp.binding import get_binding
    from aexp.jobdoc import read_doc
    from aexp.spec import run_spec

    project = _project(args)
    (job,) = _jobs(project, [args.job], stdin=False)
    doc = read_doc(job)
    binding = get_binding(job, doc)
    files = _run_files(job, binding)
    other = {k: v for k, v in doc.items() if k != "tracker"}
    everything = _plain(
        {
            "job_id": job.id,
            "path": job.path,
            "statepoint": job.cached_statepoint,
            "document": other,
            "tracker": binding,
            "sync": _sync_state(binding),
            "run_files": files,
        }
    )
    if args.field:
        value: Any = everything
        for part in args.field.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]  # tracker.previous_runs.0.run_id
                continue
            if not isinstance(value, dict) or part not in value:
                raise UsageError(
                    f"--field {args.field}: job {job.id} has no {part!r} there; "
                    "see 'aexp show --json' for the fields."
                )
            value = value[part]
        print(value if isinstance(value, str) else json.dumps(value))
        return 0
    if args.json:
        print(_dump(everything))
        return 0
    group = binding["group"] if binding else run_spec(job)["group"]
    lines = [f"job {job.id}", f"  path   {job.path}", f"  group  {group}", ""]
    lines += _section("state point", _plain(job.cached_statepoint))
    lines += ["", *_section("job document", other)]
    if binding is None:
        lines += ["", "tracker", f"  not bound (bind it with: aexp bind-tracker {job.id})"]
    else:
        lines += ["", *_section("tracker", binding)]
        lines += ["", "sync (per backend)", *_sync_lines(everything["sync"])]
    if files:
        lines += ["", "run files"] + [f"  {f['path']}  ({f['kind']})" for f in files]
    print("\n".join(lines))
    return 0


def register(commands: Commands) -> None:
    """Add `aexp show`: its options, help text and examples."""
    sub = commands.add(
        "show",
        "show everything about one job: state point, document, binding, run files",
        "  aexp show 5d1f4c3e                       (a job id or a unique prefix of one)\n"
        "  aexp show k3j5x9q2                       (a tracker run id finds its job)\n"
        "  aexp show 5d1f4c3e --field tracker.url   (one value, for scripts)",
        cmd_show,
    )
    sub.add_argument("job", metavar="JOB", help="job id, unique prefix, or tracker run id")
    out = sub.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument(
        "--field",
        metavar="PATH",
        help="print one value of the JSON, e.g. tracker.run_id, statepoint.seed, "
        "tracker.previous_runs.0.run_id (list items by number)",
    )
