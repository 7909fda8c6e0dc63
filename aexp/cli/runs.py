"""`aexp runs`: list jobs with their backend, run id, state, synced or not, and URL."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from aexp.binding import STATES, get_binding, run_spec
from aexp.cli.output import _dump, _table, _warn
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project, _signac_error
from aexp.errors import BindingError
from aexp.jobdoc import read_doc

_STATE_CHOICES = (*STATES, "unbound", "corrupt")


def _row(job: Any) -> dict[str, Any]:
    sp = job.cached_statepoint
    row: dict[str, Any] = {
        "job_id": job.id,
        "experiment_id": sp.get("experiment_id"),
        "hypothesis_id": sp.get("hypothesis_id"),
        "group": None,
        "backend": None,
        "offline": None,
        "run_id": None,
        "state": "unbound",
        "url": None,
        "synced": None,
        "synced_at": None,
        "status": None,
    }
    try:
        doc = read_doc(job)
        binding = get_binding(job, doc)
    except BindingError as exc:
        _warn(str(exc))
        row["state"] = "corrupt"
        return row
    row["status"] = doc.get("status")
    if binding is None:
        row["group"] = run_spec(job)["group"]
        return row
    wandb_offline = binding["backend"] == "wandb" and bool(binding.get("offline"))
    row.update(
        group=binding.get("group"),
        backend=binding["backend"],
        offline=bool(binding.get("offline")),
        run_id=binding["run_id"],
        state=binding["state"],
        url=binding.get("url"),
        synced=bool(binding.get("synced_at")) if wandb_offline else None,
        synced_at=binding.get("synced_at"),
    )
    return row


def cmd_runs(args: argparse.Namespace) -> int:
    project = _project(args)
    rows = []
    jobs = sorted(project, key=lambda j: j.id) if os.path.isdir(project.workspace) else []
    for job in jobs:
        try:
            sp = job.cached_statepoint
        except _signac_error("JobsCorruptedError"):
            _warn(f"job {job.id}: its state point file is missing or corrupted; skipped.")
            continue
        if args.experiment and sp.get("experiment_id") != args.experiment:
            continue
        if args.hypothesis and sp.get("hypothesis_id") != args.hypothesis:
            continue
        row = _row(job)
        if args.state and row["state"] not in args.state:
            continue
        rows.append(row)
    rows.sort(key=lambda r: (r["group"] or "", r["job_id"]))
    if args.json:
        print(_dump(rows))
        return 0
    if args.quiet:
        for row in rows:
            print(row["job_id"])
        return 0
    if not rows:
        print("no jobs match.", file=sys.stderr)
        return 0

    def backend(row: dict[str, Any]) -> str | None:
        if row["backend"] and row["offline"] and row["backend"] != "noop":
            return f"{row['backend']}-offline"
        return row["backend"]

    def synced(row: dict[str, Any]) -> str | None:
        return None if row["synced"] is None else ("yes" if row["synced"] else "no")

    header = ("JOB", "GROUP", "BACKEND", "RUN", "STATE", "SYNCED", "URL")
    table = [
        (r["job_id"], r["group"], backend(r), r["run_id"], r["state"], synced(r), r["url"])
        for r in rows
    ]
    print(_table(header, table))
    return 0


def _state(text: str) -> str:
    if text not in _STATE_CHOICES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r}; known states: {', '.join(_STATE_CHOICES)}"
        )
    return text


def register(commands: Commands) -> None:
    """Add `aexp runs`: its options, help text and examples."""
    sub = commands.add(
        "runs",
        "list jobs with their backend, run id, state, synced or not, and URL",
        "  aexp runs --experiment E018 --state failed\n"
        "  aexp runs --json\n\n"
        f"States: {', '.join(_STATE_CHOICES)}.",
        cmd_runs,
    )
    sub.add_argument("--experiment", metavar="E", help="only this experiment id")
    sub.add_argument("--hypothesis", metavar="H", help="only this hypothesis id")
    sub.add_argument(
        "--state", type=_state, action="append", metavar="S", help="only this state (repeatable)"
    )
    out = sub.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON list")
    out.add_argument("-q", "--quiet", action="store_true", help="print only the job ids")
