"""`aexp status`: where every job stands (state, stale, sync, last step, error), or what changed
since a cursor. The documents are aexp.reports.status and aexp.reports.changes; this module
prints them.
"""

from __future__ import annotations

import argparse
from typing import Any

from aexp.cli.output import _dump, _table
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project_dir
from aexp.cli.runs import SELECTABLE_STATES


def _sync(entry: dict[str, Any]) -> str:
    parts = entry["backends"]
    if not parts:
        return "-"
    return ",".join(
        f"{name}:{'synced' if p['synced'] else ('due' if p['needs_sync'] else '-')}"
        for name, p in parts.items()
    )


def _row(entry: dict[str, Any]) -> list[Any]:
    shown = entry["shown"]  # aexp.state.JobState.shown, as every view prints it
    state = f"{entry['state']}, {shown}" if shown != entry["state"] else shown
    why = entry["error"] or entry["problem"]
    return [entry["job_id"], state, entry["run_id"], entry["last_step"], _sync(entry), why]


def _state(text: str) -> str:
    if text not in SELECTABLE_STATES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r}; known states: {', '.join(SELECTABLE_STATES)}"
        )
    return text


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0, not {text!r}")
    return value


def cmd_status(args: argparse.Namespace) -> int:
    from aexp.jobs import find_project_root

    root = find_project_root(_project_dir(args))
    if args.since:
        from aexp.reports.changes import changes_document

        doc = changes_document(root, args.since, limit=args.limit)
        if args.json:
            print(_dump(doc))
            return 0
        rows = [
            [c["job_id"], c["change"], c["was"], *(_row(c["job"])[1:] if c["job"] else [])]
            for c in doc["changes"]
        ]
        if rows:
            width = max(len(r) for r in rows)
            header = ("JOB", "CHANGE", "WAS", "STATE", "RUN", "STEP", "SYNC", "ERROR")[:width]
            print(_table(header, [r + [None] * (width - len(r)) for r in rows]))
        more = f" ({doc['omitted']} more not shown)" if doc["omitted"] else ""
        changed = len(rows) + doc["omitted"]
        print(
            f"{changed} changed of {doc['total']} jobs{more}; next: aexp status --since "
            f"{doc['cursor']}"
        )
        return 0
    from aexp.reports.status import status_document

    doc = status_document(root, states=args.state or (), limit=args.limit)
    if args.json:
        print(_dump(doc))
        return 0
    if doc["jobs"]:
        header = ("JOB", "STATE", "RUN", "STEP", "SYNC", "ERROR")
        print(_table(header, [_row(e) for e in doc["jobs"]]))
    counts = ", ".join(f"{n} {state}" for state, n in doc["counts"].items() if n)
    more = f" ({doc['omitted']} more not shown)" if doc["omitted"] else ""
    print(f"{doc['total']} jobs" + (f": {counts}" if counts else "") + more)
    if doc["cursor"]:
        print(f"changes from here on: aexp status --since {doc['cursor']}")
    return 0


def register(commands: Commands) -> None:
    """Add `aexp status`: its options, help text and examples."""
    sub = commands.add(
        "status",
        "where every job stands: state, stale, sync per backend, last step, error",
        "  aexp status\n"
        "  aexp status --json                       (document aexp.status/1, with a cursor)\n"
        "  aexp status --json --since c1-0123456789abcdef   (only what changed since)\n\n"
        "--since reads only the jobs whose directory changed since the cursor (one stat per\n"
        "job), plus the jobs that were running; cursors last an hour.",
        cmd_status,
    )
    sub.add_argument("--json", action="store_true", help="print the JSON document")
    sub.add_argument(
        "--state",
        action="append",
        type=_state,
        metavar="S",
        help="list only jobs in this state (repeatable; 'stale' for dead running ones, "
        "'stalled' for live ones whose journal went silent); the "
        "counts stay the whole project's",
    )
    sub.add_argument("--limit", type=_limit, metavar="N", help="list at most N jobs (or changes)")
    sub.add_argument(
        "--since",
        metavar="CURSOR",
        help="only what changed since CURSOR (from an earlier status), with a new cursor",
    )


__all__ = ["cmd_status", "register"]
