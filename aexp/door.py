"""The one door every command leaves by: `python project.py`, `aexp` and `python dashboard.py`
turn whatever ends them into one sentence and one exit code, through `verdict`.

    code    when
    0       done (a prompt the user declined included)
    1       something failed in the work: an experiment or a sync, a write the file system
            refused (full, read-only, over quota), a problem the pass found (a job it could not
            read, a directory that is not a job)
    2       usage or settings: the command line, signac.rc, a job or operation that does not
            exist, a job named whose document or state point cannot be read, no project, a
            backend's package not installed; nothing was done
    128+n   stopped by signal n (130: Ctrl-C)

Before the door is open (the command's imports, project.py's top level), aexp.startup says a
Ctrl-C in the same line; each door hands it back with `release_interrupts` inside its try block.

`verdict(exc)` is that table's one reading: an aexp error carries its own code
(`AexpError.exit_code`); the file system's refusals (also inside signac's buffered writes), a
state point signac cannot read and Ctrl-C are read here; anything else is a bug and keeps its
traceback. A job whose state point is damaged is never named for removal: its run's journal
holds the state point, and the verdict names `aexp repair` (aexp.statepoints.damage_line).

Also the pieces every parser of the door shares: `SentenceParser` (argparse, whose refusals are
one sentence), `did_you_mean` and `unknown_option` (a misspelt command, operation or option gets
the closest known one).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aexp.errors import AexpError, UsageError
from aexp.startup import INTERRUPTED_LINE

OK, FAILED, USAGE = 0, 1, 2
INTERRUPTED = 130  # 128 + SIGINT
# A file system that refuses writes: full, over quota, read-only.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def signal_exit(signum: int) -> int:
    """The exit code of a command stopped by signal `signum` (128 + n, as a shell reports it)."""
    return 128 + int(signum)


@dataclass(frozen=True)
class Verdict:
    """How a command ends: `code` (the table above) and its one sentence (`line`, without a
    prefix; None when it was said already). `damaged`: the ids of jobs whose state point
    signac could not read (the door offers their repair and goes on without them)."""

    code: int
    line: str | None
    damaged: tuple[str, ...] = ()


def verdict(exc: BaseException, workspace: str | None = None) -> Verdict | None:
    """The Verdict on an exception that ended a command; None when the door does not know it
    (a bug: it propagates with its traceback). `workspace`: the project's, to describe a
    damaged job (its directory, whether its journal can rebuild it)."""
    if isinstance(exc, KeyboardInterrupt):
        return Verdict(INTERRUPTED, INTERRUPTED_LINE)
    if isinstance(exc, AexpError):
        return Verdict(exc.exit_code, str(exc))
    if _is(exc, "signac", "JobsCorruptedError"):
        ids = tuple(str(i) for i in getattr(exc, "job_ids", ()) or ())
        return Verdict(USAGE, damaged_jobs_line(ids, workspace), damaged=ids)
    if _is(exc, "synced_collections", "BufferedError"):  # signac's buffered document writes
        files = getattr(exc, "files", None) or {}
        for name, error in files.items():
            if isinstance(error, OSError):
                return _os_verdict(error, error.filename or name)
    if isinstance(exc, OSError):
        return _os_verdict(exc, exc.filename)
    if _is(exc, "signac", "Error"):  # signac's own, e.g. a project of an older schema
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Verdict(USAGE, f"signac: {first}")
    return None


def _is(exc: BaseException, package: str, name: str) -> bool:
    """Whether `exc` is an instance of `package`'s class `name` (by the class's own module),
    without importing `package`: a command that never loaded it cannot have raised it."""
    return any(
        cls.__name__ == name and cls.__module__.split(".")[0] == package
        for cls in type(exc).__mro__
    )


def _os_verdict(exc: OSError, filename: Any) -> Verdict:
    where = os.fspath(filename) if filename else None
    if exc.errno in STORAGE_ERRNOS:
        folder = os.path.dirname(where) if where else "the project"
        return Verdict(FAILED, storage_problem(exc, folder, "nothing stored was lost"))
    what = exc.strerror or str(exc)
    return Verdict(FAILED, f"{what}: {where}." if where else f"{what}.")


def _redeliver_interrupts(unraisable: Any) -> None:
    # A signal handler raising where Python cannot pass the exception on (a weakref callback,
    # as importlib's module locks use, or a finalizer) would print "Exception ignored ...
    # KeyboardInterrupt" with a traceback and lose the Ctrl-C (or the SIGTERM a handler turned
    # into an exception): the command ran on and exited 0. The signal is sent again instead,
    # and its handler runs in ordinary code, where the door sees it.
    exc = unraisable.exc_value
    signum = signal.SIGINT if isinstance(exc, KeyboardInterrupt) else getattr(exc, "signum", None)
    if isinstance(exc, BaseException) and not isinstance(exc, Exception) and signum:
        # Sent again from another thread a moment later: raised from here (raise_signal,
        # interrupt_main), the handler would run at once, inside this hook, where its exception
        # is ignored again. A real signal also wakes a main thread blocked in a system call.
        timer = threading.Timer(0.01, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    sys.__unraisablehook__(unraisable)


def keep_interrupts() -> None:
    """Make a Ctrl-C (or another signal a handler turns into an exception that is not an
    Exception: KeyboardInterrupt, a preemption) that lands where Python cannot raise it be
    delivered again, not printed and lost (sys.unraisablehook). Called by the entry points
    (`aexp`, project.py) before anything else."""
    sys.unraisablehook = _redeliver_interrupts


# What a refused write means for a pass that has begun (`storage_problem`'s default outcome).
PASS_OUTCOME = (
    "what this pass could not do stays eligible, and an attempt cut short resumes from its last "
    "checkpoint"
)


def storage_problem(exc: OSError, where: str, outcome: str = PASS_OUTCOME) -> str:
    """The one sentence for a write the file system itself refused (full, over quota,
    read-only), wherever it happens: what happened, where, what to do, and `outcome` (what it
    means for the work: by default, a pass's)."""
    what = {
        errno.ENOSPC: "is full",
        errno.EDQUOT: "is over its quota",
        errno.EROFS: "is read-only",
    }.get(exc.errno or 0, "refused a write")
    return (
        f"the file system of {where} {what} ({exc.strerror or exc}); free space (or make it "
        f"writable) and run again: {outcome}."
    )


def damaged_jobs_line(job_ids: Sequence[str], workspace: str | None) -> str:
    """One sentence for jobs whose state point signac could not read: each job's problem and
    what to do (aexp.statepoints.damage_line), joined."""
    if workspace is None:
        ids = " ".join(job_ids)
        return f"the state point of job {ids} cannot be read; rebuild it with: aexp repair {ids}"
    from aexp.jobdoc import JobDir
    from aexp.statepoints import damage_line

    return " ".join(damage_line(JobDir(i, os.path.join(workspace, i))) for i in job_ids)


def interactive() -> bool:
    """Whether a person answers at a terminal: stdin and stderr both are one (never in a batch
    job, a pipe, a test's subprocess)."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def ask(question: str, *, default: bool) -> bool:
    """Ask a yes/no `question` on stderr and read the answer from stdin ("" is `default`; an
    end of input is no)."""
    hint = "[Y/n]" if default else "[y/N]"
    sys.stderr.write(f"{question} {hint} ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:
        return False
    answer = answer.strip().lower()
    return default if not answer else answer in ("y", "yes")


def offer_repair(workspace: str, job_ids: Sequence[str]) -> set[str]:
    """On a terminal (`interactive`), offer once to rebuild the state points of `job_ids` (jobs
    of `workspace`) from their runs' journals, and rebuild them (aexp.statepoints); returns the
    ids whose state point is readable now. Without a terminal, or declined: an empty set (the
    door's line names `aexp repair` instead). Never deletes anything."""
    if not job_ids or not interactive():
        return set()
    from aexp.errors import StatepointError
    from aexp.jobdoc import JobDir
    from aexp.statepoints import rebuild_statepoint, repair_statepoint, statepoint_problem

    jobs = []
    for job in (JobDir(i, os.path.join(workspace, i)) for i in job_ids):
        try:
            rebuild_statepoint(job)  # only what its journal can rebuild is offered
        except StatepointError:
            continue
        jobs.append(job)
        problem = statepoint_problem(job) or "its state point cannot be read"
        sys.stderr.write(f"job {job.id}: {problem}.\n")
    if not jobs:
        return set()
    noun = "this job's state point" if len(jobs) == 1 else f"these {len(jobs)} jobs' state points"
    if not ask(f"Rebuild {noun} from the runs' journals now?", default=True):
        return set()
    readable = set()
    for job in jobs:
        try:
            repair_statepoint(job)
        except (StatepointError, OSError) as exc:
            sys.stderr.write(f"job {job.id}: {exc}\n")
            continue
        sys.stderr.write(f"job {job.id}: its state point is rebuilt from its journal.\n")
        readable.add(job.id)
    return readable


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


class SentenceParser(argparse.ArgumentParser):
    """An argparse parser whose refusals are one sentence (a UsageError: exit code 2), never
    usage text and an exit: a misspelt command, choice or option is named with the closest
    known one. Its sub-parsers (argparse makes them of the same class) do the same; a command
    line that names no command, where there are commands, is refused too."""

    def error(self, message: str) -> Any:
        raise UsageError(self.sentence(message, sys.argv[1:]))

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        parsed = super().parse_args(args, namespace)
        commands = self.commands
        if commands and not hasattr(parsed, "func"):
            raise UsageError(
                f"no command given; commands: {', '.join(commands)} (see '{self.prog} --help')."
            )
        return parsed

    @property
    def commands(self) -> dict[str, argparse.ArgumentParser]:
        """The sub-parsers by command name ({} for a parser without commands)."""
        for action in self._actions:  # argparse has no public listing of sub-parsers
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    @property
    def option_names(self) -> list[str]:
        """Every option string this parser accepts."""
        # argparse keeps them in a private table and offers no public listing.
        return list(self._option_string_actions)

    def sentence(self, message: str, argv: Sequence[str]) -> str:
        """One sentence for argparse's `message` about the command line `argv`."""
        choice = re.match(
            r"argument (\S+): invalid choice: '?([^']*?)'? \(choose from (.*)\)", message
        )
        if choice:
            what, word, choices = choice.groups()
            known = re.findall(r"'([^']*)'", choices) or [c.strip() for c in choices.split(",")]
            noun = what if what.isidentifier() else "command"
            return (
                f"unknown {noun} {word!r}{did_you_mean(word, known)}; {noun}s: {', '.join(known)}."
            )
        if "unrecognized arguments" in message:
            word = next((a for a in argv if not a.startswith("-")), "")
            sub = self.commands.get(word)
            parser = sub if isinstance(sub, SentenceParser) else self
            unknown = unknown_option(argv, parser.option_names + self.option_names)
            if unknown:
                return f"{unknown}; see '{parser.prog} --help'."
        message = message.replace(
            "the following arguments are required", "missing required argument"
        )
        return f"{message}; see '{self.prog} --help'."


__all__ = [
    "FAILED",
    "INTERRUPTED",
    "OK",
    "STORAGE_ERRNOS",
    "USAGE",
    "SentenceParser",
    "Verdict",
    "ask",
    "damaged_jobs_line",
    "did_you_mean",
    "interactive",
    "offer_repair",
    "signal_exit",
    "storage_problem",
    "unknown_option",
    "verdict",
]
