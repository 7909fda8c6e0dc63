"""The argparse plumbing every command shares: the program name, a parser that
raises instead of printing usage, and `Commands`, through which each command module's
`register` adds its sub-parser (the command modules are listed in `aexp/cli/__init__.py`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

PROG = "aexp"


class _ArgumentError(Exception):
    """argparse found a problem; turned into one `aexp: error:` line by `main`."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    # Set by build_parser on the top-level parser: main names them for an unknown command.
    command_names: tuple[str, ...] = ()
    # Set by build_parser on the top-level parser: {command: its sub-parser}.
    command_parsers: dict[str, _Parser] = {}

    def error(self, message: str) -> Any:  # never prints usage: one sentence, see main()
        raise _ArgumentError(message, self.prog)

    @property
    def option_names(self) -> list[str]:
        """Every option string this parser accepts (`--sp`, `-C`, ...)."""
        # argparse keeps them in a private table and offers no public listing.
        return list(self._option_string_actions)


class Commands:
    """The `aexp COMMAND` sub-parsers: a command module's `register(commands)` calls `add`."""

    def __init__(
        self,
        subparsers: argparse._SubParsersAction[_Parser],
        common: argparse.ArgumentParser,
    ) -> None:
        self._subparsers = subparsers
        self._common = common  # the options every command accepts after its name (-C DIR)
        self.parsers: dict[str, _Parser] = {}

    def add(
        self, name: str, summary: str, example: str, func: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        """Add command `name` running `func`; returns its parser for the command's arguments.

        `summary` is the one line of `aexp --help` (and, capitalised, the command's description);
        `example` follows "examples:" at the end of `aexp NAME --help`.
        """
        sub = self._subparsers.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog="examples:\n" + example,
            parents=[self._common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(func=func, command_prog=sub.prog)
        self.parsers[name] = sub
        return sub

    @property
    def names(self) -> tuple[str, ...]:
        """The commands added so far, in the order `aexp --help` lists them."""
        return tuple(self._subparsers.choices)
