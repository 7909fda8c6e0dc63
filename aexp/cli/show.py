"""`aexp show`: everything about one job (state point, document, binding, each backend's sync
state, run files), found by job id, unique prefix or tracker run id. The document is
aexp.reports.show (`aexp.show/1`).

What is synced is said per backend, from the job document (each backend's `synced_at`; W&B's
fragments as the document records them), never from the primary backend or W&B's marker files.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from aexp.cli.output import _dump, _section
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project
from aexp.errors import UsageError


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
    from aexp.reports.show import show_document
    from aexp.spec import run_spec

    project = _project(args)
    (job,) = _jobs(project, [args.job], stdin=False)
    everything = show_document(job)
    binding, files, other = everything["tracker"], everything["run_files"], everything["document"]
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
    lines = [f"job {job.id}", f"  path   {job.path}", f"  group  {group}"]
    lines += [f"  state  {everything['shown']}", ""]
    lines += _section("state point", everything["statepoint"])
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
