"""The argparse plumbing every command shares: the program name, `UsageError`, a parser that
raises instead of printing usage, and `Commands`, through which each command module's
`register` adds its sub-parser (the command modules are listed in `aexp/cli/__init__.py`).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aexp.errors import AexpError

PROG = "aexp"


class UsageError(AexpError):
    """The command line itself is wrong (grammar of --sp, a flag's value, ...)."""


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


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The clause " (did you mean X?)" naming the choices closest to a mistyped `word` (at most
    two, the closest first: `rearn` is one letter from both `rearm` and `rerun`), or "" if none
    is close (difflib's similarity of at least 0.6, its default). Options are compared without
    their dashes: every long option shares "--", which would make `--frob` look like
    `--group-by`."""
    by_bare = {choice.lstrip("-"): choice for choice in choices}
    close = difflib.get_close_matches(word.lstrip("-"), list(by_bare), n=2)
    return f" (did you mean {' or '.join(by_bare[c] for c in close)}?)" if close else ""


def unknown_option(argv: Sequence[str], known: Iterable[str]) -> str | None:
    """A sentence naming the first option of `argv` that no parser knows, with the closest known
    one; None when every option is known. Options after a bare `--` are operands; an
    unambiguous prefix of a known long option is known (argparse accepts it)."""
    known = list(known)
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-" or arg[1:2].isdigit():
            continue
        name = arg.split("=", 1)[0]
        if name in known:
            continue
        if name.startswith("--") and sum(k.startswith(name) for k in known) == 1:
            continue
        return f"unknown option {name}{did_you_mean(name, known)}"
    return None


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
