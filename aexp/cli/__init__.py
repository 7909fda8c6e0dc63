"""The `aexp` command line: create runs, bind them to trackers, sync, and find a run from a job
and back. docs/cli.md is the manual; every example in it is run by tests/test_cli.py.

    aexp new-run --experiment E018 --hypothesis H012 --sp 'condition=full|ablated,seed=0..4'
    aexp bind-tracker <job_id> --backend wandb --project ecg-inquiry-eval --offline
    aexp runs                      aexp show <job id, prefix or run id>
    aexp list-runs --backend wandb --group-prefix H012/
    aexp sync-offline              aexp rearm <job_id>
    aexp resources                 walltime and memory sized from past attempts

Exit codes (aexp.door's table, the same as project.py's): 0 done; 1 something failed while doing
the work (a sync failed, a file could not be written, a job cannot be read); 2 usage or settings
(one sentence on stderr, nothing changed on disk); 128 + n stopped by signal n (130: Ctrl-C).

Layout: command `aexp foo-bar` lives in `aexp/cli/foo_bar.py`, which defines the command's
function and `register(commands)`, adding its sub-parser (help, options, examples). This module
holds `main` (errors to exit codes) and `build_parser`. Shared pieces: `parsing` (argparse
plumbing, `UsageError`), `resolve` (project, jobs and tracker named on the command line),
`output` (tables, JSON, warnings), `sweep` (the `--sp` grammar).

A new command is one module plus its registration: write `aexp/cli/foo_bar.py` with `register`,
then import it below and add it to `COMMAND_MODULES` where `aexp --help` should list it (ruff
reports either half done alone: an unused import, or an undefined name).

Imports: every module of this package is imported for every command, so at its top level a
command module imports only what its parser needs (this package's shared pieces, aexp.errors,
aexp.schema, the backend names of aexp.trackers). What the command does (aexp.binding, .results,
.settings, .sync, signac, wandb, ...) is imported inside its `cmd_*` function, when it runs: the
parser of every command is built without any of it, and an idle `aexp sync-offline` pass loads
neither signac, flow nor wandb. tests/test_cli.py and tests/test_sync.py check both. `main`
registers only the sub-parser of the command it is given (argparse spends ~10 ms on the others);
a command line naming none, or an unknown one, gets them all.
"""

from __future__ import annotations

from aexp import startup  # first: `python -m aexp.cli` guards Ctrl-C from here (aexp.startup)

# isort: split
import argparse
import os
import re
import sys
from collections.abc import Sequence
from types import ModuleType

from aexp import __version__, door
from aexp.cli import (
    apply,
    best,
    bind_tracker,
    compare,
    diagnose,
    export_otel,
    list_runs,
    mcp,
    new_run,
    plot,
    rearm,
    remove,
    repair,
    rerun,
    resources,
    runs,
    show,
    status,
    sync_offline,
)
from aexp.cli.parsing import PROG, Commands, _ArgumentError, _Parser
from aexp.cli.sweep import MAX_SWEEP, parse_sp
from aexp.errors import UsageError

__all__ = ["MAX_SWEEP", "PROG", "UsageError", "build_parser", "main", "parse_sp"]

# The commands, in the order `aexp --help` lists them; each module's `register` adds its own.
COMMAND_MODULES = (
    status,
    new_run,
    bind_tracker,
    sync_offline,
    runs,
    best,
    compare,
    plot,
    show,
    diagnose,
    list_runs,
    rearm,
    rerun,
    remove,
    apply,
    repair,
    export_otel,
    mcp,
    resources,
)


def build_parser(only: str | None = None) -> _Parser:
    """The `aexp` argument parser: every command, with its help and example, or only command
    `only` when it names one (what `main` uses once it knows the command; see _command_of)."""
    common = _Parser(add_help=False)
    common.add_argument(
        "-C",
        "--project-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="use the signac project containing DIR (default: the current directory)",
    )
    parser = _Parser(
        prog=PROG,
        description="Bind signac jobs to experiment-tracker runs (W&B, noop), sync offline runs, "
        "and find a run from a job and back.",
        epilog="examples:\n"
        "  aexp new-run --experiment E018 --hypothesis H012 --sp condition=full,seed=0\n"
        "  aexp runs --state failed\n\n"
        "'aexp COMMAND --help' explains one command; docs/cli.md is the manual.\n"
        "Exit codes: 0 ok, 1 failed while working (e.g. a sync), 2 bad input, 130 interrupted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "-C",
        "--project-dir",
        metavar="DIR",
        default=None,
        help="use the signac project containing DIR (default: the current directory)",
    )
    commands = Commands(
        parser.add_subparsers(dest="command", metavar="COMMAND", title="commands"), common
    )
    modules = [m for m in COMMAND_MODULES if _command_name(m) == only] or COMMAND_MODULES
    for module in modules:
        module.register(commands)
    parser.command_names = commands.names
    parser.command_parsers = commands.parsers
    return parser


def _command_name(module: ModuleType) -> str:
    """The command a module of COMMAND_MODULES adds: `aexp/cli/foo_bar.py` adds `foo-bar`."""
    return module.__name__.rpartition(".")[2].replace("_", "-")


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of a command line: its first argument that is neither an option of
    `aexp` itself nor the DIR of `-C DIR` (None when there is none)."""
    args = iter(argv)
    for arg in args:
        if arg in ("-C", "--project-dir"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _usage_message(exc: _ArgumentError, parser: _Parser, argv: Sequence[str]) -> str:
    """One sentence for what argparse refused. A misspelt option is named first, with the option
    it most likely meant: `--hypotesis H1` makes argparse complain that `--hypothesis` is
    missing, which is true but not what the user needs to hear."""
    message = str(exc)
    commands = parser.command_names
    match = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
    if match:
        word = match.group(1)
        return (
            f"unknown command {word!r}{door.did_you_mean(word, commands)}; "
            f"commands: {', '.join(commands)}."
        )
    command = parser.command_parsers.get(_command_of(argv) or "")
    known = (command or parser).option_names  # `-C` is the command's too; `--version` is not
    unknown = door.unknown_option(argv, known)
    if unknown:
        return f"{unknown}; see '{exc.prog} --help'."
    message = message.replace("the following arguments are required", "missing required argument")
    return f"{message}; see '{exc.prog} --help'."


def _fail(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


# Options whose value may start with "-" (`--sort -loss`: descending), which argparse would
# otherwise take for an option of its own.
_DASH_VALUES = ("--sort",)


def _attach_dash_values(argv: Sequence[str]) -> list[str]:
    """`--sort -loss` as `--sort=-loss`, so argparse reads `-loss` as the option's value."""
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item in _DASH_VALUES and i + 1 < len(items) and items[i + 1].startswith("-"):
            out.append(f"{item}={items[i + 1]}")
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aexp` console script; returns the exit code (aexp.door's table)."""
    door.keep_interrupts()
    argv = _attach_dash_values(sys.argv[1:] if argv is None else argv)
    try:
        startup.release_interrupts()  # from here a Ctrl-C is this door's to say (see below)
        parser = build_parser(only=_command_of(argv))
        args, extra = parser.parse_known_args(argv)
        if extra:
            prog = getattr(args, "command_prog", PROG)
            noun = "arguments" if len(extra) > 1 else "argument"
            raise _ArgumentError(f"unrecognized {noun}: {' '.join(extra)}", prog)
        if args.command is None:
            raise _ArgumentError("no command given", PROG)
        return _through_door(args)
    except _ArgumentError as exc:
        _fail(_usage_message(exc, parser, argv))
        return door.USAGE
    except KeyboardInterrupt:  # while the parser is built or reads the command line
        print(startup.AEXP_INTERRUPTED_LINE, file=sys.stderr)
        return door.INTERRUPTED


def _through_door(args: argparse.Namespace) -> int:
    """Run the command; whatever ends it becomes one line and an exit code (aexp.door). A job
    whose state point cannot be read is offered for repair on a terminal, and the command runs
    again once it is rebuilt."""
    repaired: set[str] = set()
    while True:
        try:
            return args.func(args)
        except BrokenPipeError:  # `aexp runs | head`: the reader left; not an error of ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return door.OK
        except (Exception, KeyboardInterrupt) as exc:
            workspace = _workspace(args)
            said = door.verdict(exc, workspace)
            if said is None:
                raise
            fresh = set(said.damaged) - repaired
            if fresh and workspace and door.offer_repair(workspace, sorted(fresh)) == fresh:
                repaired |= fresh
                continue
            if isinstance(exc, KeyboardInterrupt):
                print(startup.AEXP_INTERRUPTED_LINE, file=sys.stderr)
            elif said.line:
                _fail(said.line)
            return said.code


def _workspace(args: argparse.Namespace) -> str | None:
    """The workspace of the project the command names (-C DIR), if there is one."""
    from aexp.jobs import find_project_root

    try:
        return os.path.join(find_project_root(getattr(args, "project_dir", None)), "workspace")
    except Exception:  # no project: nothing to describe a damaged job with
        return None
