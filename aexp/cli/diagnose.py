"""`aexp diagnose JOB`: why a job is not running, or failed (aexp.reports.diagnose)."""

from __future__ import annotations

import argparse

from aexp.cli.output import _dump
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project


def cmd_diagnose(args: argparse.Namespace) -> int:
    from aexp.reports.diagnose import diagnose_document
    from aexp.settings import load_settings

    project = _project(args)
    (job,) = _jobs(project, [args.job], stdin=False)
    doc = diagnose_document(job, stale_after=load_settings(project.path).stale_after)
    if args.json:
        print(_dump(doc))
        return 0
    lines = [doc["why"]]
    if doc["next"]:
        lines.append(f"next: {', '.join(doc['next'])}")
    for a in doc["attempts"]:
        code = "-" if a["exit_code"] is None else a["exit_code"]
        lines.append(
            f"  attempt {a['number']}: {a['ended']} (exit code {code}, host {a['host'] or '-'}, "
            f"last step {a['last_step']})"
        )
    if doc["holder"]:
        lines.append(f"held: {doc['holder']}")
    tail = [line for line in doc["error_log"]["tail"] if line.strip()][-3:]
    if tail:  # the error's last lines (--json has more)
        lines += [f"{doc['error_log']['path']} (last lines):", *tail]
    print("\n".join(lines))
    return 0


def register(commands: Commands) -> None:
    """Add `aexp diagnose`: its options, help text and examples."""
    sub = commands.add(
        "diagnose",
        "why a job is not running, or failed: attempts, error.log, who holds it",
        "  aexp diagnose 5d1f4c3e\n  aexp diagnose 5d1f4c3e --json     (aexp.diagnose/1)",
        cmd_diagnose,
    )
    sub.add_argument("job", metavar="JOB", help="job id, unique prefix, or tracker run id")
    sub.add_argument("--json", action="store_true", help="print the JSON document")


__all__ = ["cmd_diagnose", "register"]
