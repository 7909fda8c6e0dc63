"""The options aexp adds to flow's command line: `--canary [N]` on `run` and `submit`, `--json`
on `run`.

flow builds its sub-commands' parsers inside `FlowProject.main` and offers no hook to add an
option to `run`; it does take the parser to build on (aexp.workflow.arguments.FlowParser,
which calls `add_options`): each sub-parser flow adds gets aexp's options, and the parsed
`canary` reaches the project (`WorkflowProject.canary`; `submit` also gets it as a keyword
argument from flow), as does `--json` (`WorkflowProject.pass_json`).

    python project.py submit --canary       one job first, the rest after it succeeded
    python project.py submit --canary 3     three jobs first
    python project.py run --canary          run one job first; stop if it fails
    python project.py run --json            the pass summary as one `aexp.run/1` JSON line
"""

from __future__ import annotations

import argparse
from typing import Any

CANARY_HELP = {
    "submit": (
        "submit N jobs first (default 1) and the rest of the sweep depending on them "
        "(--dependency=afterok): if a canary fails, the rest are held and never start "
        "(docs/hpc.md, 'A canary')"
    ),
    "run": (
        "run N jobs first (default 1); if one of them fails, stop there and run no other job "
        "(docs/workflow.md)"
    ),
}
JSON_HELP = (
    "print the pass summary as one JSON document (aexp.run/1, docs/json.md), the last line of "
    "stdout; its two lines go to stderr then"
)


def canary_count(text: str) -> int:
    """`--canary`'s value: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_options(action: Any) -> Any:
    """Make each sub-parser that argparse sub-parsers `action` adds (flow adds `run`,
    `submit`, ...) take aexp's options; returns `action`. The parsed `canary` and `json` are the
    project's (`WorkflowProject.canary`, None: not asked for; `WorkflowProject.pass_json`), set
    by aexp.workflow.arguments.FlowParser."""
    add_parser = action.add_parser

    def add(name: str, **options: Any) -> argparse.ArgumentParser:
        parser = add_parser(name, **options)
        if name in CANARY_HELP:
            parser.add_argument(
                "--canary",
                nargs="?",
                const=1,
                default=None,
                type=canary_count,
                metavar="N",
                help=CANARY_HELP[name],
            )
        if name == "run":
            parser.add_argument("--json", action="store_true", help=JSON_HELP)
        return parser

    action.add_parser = add
    return action


__all__ = ["CANARY_HELP", "JSON_HELP", "add_options", "canary_count"]
