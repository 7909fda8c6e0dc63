"""`aexp apply TOKEN`: carry out a plan that a write command made with `--plan` (or an MCP
write tool), once, if the jobs it touches are as the plan found them (aexp.writes.planned)."""

from __future__ import annotations

import argparse
from typing import Any

from aexp.cli.output import _dump
from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project_dir


def print_plan(doc: dict[str, Any], *, as_json: bool) -> int:
    """Print a plan (`aexp.plan/1`) as JSON, or as a few lines ending with how to apply it."""
    if as_json:
        print(_dump(doc))
        return 0
    cost = doc["cost"]
    lines = [
        f"plan: {doc['summary']}",
        f"cost: {cost['jobs']} job(s), {cost['cpu_hours']:g} CPU-hours, "
        f"{cost['gpu_hours']:g} GPU-hours",
        *(f"note: {note}" for note in doc["notes"]),
        f"nothing was changed; carry it out with: aexp apply {doc['token']} "
        f"(before {doc['expires_at']})",
    ]
    print("\n".join(lines))
    return 0


def plan_of(args: argparse.Namespace, action: str, write: dict[str, Any]) -> int:
    """`--plan` of a write command: plan `action` with `write` and print it (nothing changes)."""
    from aexp.agent.actor import current_actor
    from aexp.jobs import find_project_root
    from aexp.writes.planned import plan_write

    root = find_project_root(_project_dir(args))
    command = f"aexp {args.command} --plan"
    doc = plan_write(root, action, write, actor=current_actor(command, root=root))
    return print_plan(doc, as_json=getattr(args, "json", False))


def add_plan_options(sub: argparse.ArgumentParser) -> None:
    """`--plan` and `--json`, which every write command has."""
    sub.add_argument(
        "--plan",
        action="store_true",
        help="only say what would be done, to which jobs, at what cost, with a token for "
        "aexp apply (nothing changes)",
    )
    sub.add_argument("--json", action="store_true", help="print the JSON document")


def cmd_apply(args: argparse.Namespace) -> int:
    from aexp.agent.actor import current_actor
    from aexp.jobs import find_project_root
    from aexp.writes.planned import apply_plan

    root = find_project_root(_project_dir(args))
    doc = apply_plan(root, args.token, actor=current_actor("aexp apply {action}", root=root))
    print(_dump(doc))
    return 0


def register(commands: Commands) -> None:
    """Add `aexp apply`: its options, help text and examples."""
    sub = commands.add(
        "apply",
        "carry out a plan made by a write command's --plan, by its token (once)",
        "  aexp apply p1-0123456789abcdef0123456789abcdef\n"
        "     (the token `aexp rearm --plan 5d1f4c3e`, or any write command's --plan, printed)\n\n"
        "Refused, with nothing done, when the token is unknown, used or expired, or a job of\n"
        "the plan changed since it was made; prints the write's JSON document.",
        cmd_apply,
    )
    sub.add_argument("token", metavar="TOKEN", help="the plan's token (p1-...)")


__all__ = ["add_plan_options", "cmd_apply", "plan_of", "print_plan", "register"]
