"""The first code of every command: a Ctrl-C before its door is open ends it in one line.

Every command (`aexp`, `python -m aexp.cli`, `python project.py`, `python dashboard.py`) turns
whatever ends it into one sentence and an exit code inside its door (aexp.door). Before that
door is open, Python imports the command's modules (flow and signac take ~0.1-0.5 s) and runs
project.py's top level; a Ctrl-C there would raise KeyboardInterrupt wherever the import stood
and print its traceback (or, inside importlib's own callbacks, "Exception ignored").

    quiet_interrupts(__name__, line)   from here until the door opens, SIGINT writes `line` on
                                       stderr and ends the process at once with 130 (128 +
                                       SIGINT, aexp.door's table); nothing was done yet
    release_interrupts()               the door, inside its try block: SIGINT raises
                                       KeyboardInterrupt again, which the door turns into its line

aexp.console is the `aexp` console script: the guard, then aexp.cli.main.

SIGTERM keeps Python's default during startup: the process ends at once, silently, and the shell
reports 143 (128 + SIGTERM). A SIGINT the parent ignores (`nohup`, a background job of a script)
stays ignored. What cannot be guarded: the interpreter's own start (its `site` module and the
installed packages' .pth files) and this package's `__init__`, which run before any of this.

This module imports only `signal` (which every command imports anyway) besides what the
interpreter loads to start: a command reaches the guard before its first heavy import, and its
startup time does not change.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from types import FrameType

# What the door says of a Ctrl-C (aexp.door.verdict), here to be said before the door is open.
INTERRUPTED_LINE = "interrupted (Ctrl-C); run again to go on."
AEXP_INTERRUPTED_LINE = "aexp: interrupted"  # the `aexp` command's own (aexp.cli)


class _Guard:
    """The SIGINT handler of a command's startup: `line` on stderr, then exit 128 + SIGINT.
    os._exit, not an exception: it cannot be caught by the import it lands in, nor lost in a
    callback where Python ignores exceptions, and nothing is open yet that needs closing."""

    def __init__(self, line: str) -> None:
        self.line = line

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        # Not contextlib.suppress: contextlib is not loaded this early. A stderr closed, or a
        # reader that left: the exit code still says it.
        try:  # noqa: SIM105
            os.write(2, f"{self.line}\n".encode())
        except OSError:
            pass
        os._exit(128 + signum)


def quiet_interrupts(name: str = "__main__", line: str = INTERRUPTED_LINE) -> None:
    """When `name` (the caller's `__name__`) is "__main__", make a Ctrl-C write `line` and end
    the process with 130 until the command's door calls `release_interrupts`. A module imported
    as a library (a notebook, a test) passes its own name: nothing changes. Leaves SIGINT alone
    when it is not Python's default (ignored by the parent, or set by a host program). Call it
    from the main thread, before the command's heavy imports."""
    if name == "__main__" and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _Guard(line))


def release_interrupts() -> None:
    """The door is open (call it inside the try block that turns KeyboardInterrupt into the
    command's line): SIGINT raises KeyboardInterrupt again, as Python's default does. Does
    nothing where `quiet_interrupts` installed no guard (a command called in-process)."""
    if isinstance(signal.getsignal(signal.SIGINT), _Guard):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _run_as(module: str) -> bool:
    """Whether this process is `python -m <module>` and runpy is still importing its package:
    runpy sets sys.argv[0] to "-m" until the module's own code starts (Python's docs, `-m`)."""
    if sys.argv[:1] != ["-m"]:
        return False
    argv = sys.orig_argv
    return any(
        arg == f"-m{module}" or (arg == "-m" and argv[i + 1 : i + 2] == [module])
        for i, arg in enumerate(argv)
    )


# `python -m aexp.cli`: runpy imports the package aexp.cli (every command module, argparse)
# before its __main__ runs; aexp.cli imports this module first, so the guard starts here.
if _run_as("aexp.cli"):
    quiet_interrupts(line=AEXP_INTERRUPTED_LINE)


__all__ = [
    "AEXP_INTERRUPTED_LINE",
    "INTERRUPTED_LINE",
    "quiet_interrupts",
    "release_interrupts",
]
