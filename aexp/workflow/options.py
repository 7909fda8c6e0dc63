"""The options aexp adds to flow's command line: `--canary [N]` on `run` and `submit`.

flow builds its sub-commands' parsers inside `FlowProject.main` and offers no hook to add an
option to `run`; it does take the parser to build on. `CommandLine` is that parser: each
sub-parser flow adds gets aexp's options, and the parsed `canary` reaches the project
(`WorkflowProject.canary`; `submit` also gets it as a keyword argument from flow).

    python project.py submit --canary       one job first, the rest after it succeeded
    python project.py submit --canary 3     three jobs first
    python project.py run --canary          run one job first; stop if it fails
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


def canary_count(text: str) -> int:
    """`--canary`'s value: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


class CommandLine(argparse.ArgumentParser):
    """flow's top-level parser, with aexp's options added to `run` and `submit`; the parsed
    canary is set on `project.canary` (None: not asked for)."""

    def __init__(self, project: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._project = project

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", argparse.ArgumentParser)  # not this class: no project
        action = super().add_subparsers(**kwargs)
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
            return parser

        action.add_parser = add
        return action

    def parse_args(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        parsed = super().parse_args(*args, **kwargs)
        self._project.canary = getattr(parsed, "canary", None)
        return parsed


__all__ = ["CANARY_HELP", "CommandLine", "canary_count"]
