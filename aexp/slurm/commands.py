"""SLURM's own commands, run and read: sbatch, squeue, scontrol, sacctmgr, scancel.

Every call has a timeout (a controller that does not answer must not hang a login-node command)
and returns parsed values; what SLURM prints is never taken on trust beyond its documented
machine-readable forms (`sbatch --parsable`, `squeue -o` with `|` separators, `scontrol show
config` as `Key = Value` lines, `sacctmgr -nP`).
"""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from aexp.errors import AexpError

# Seconds a query or a submission may take. sbatch retries by itself while the controller is
# busy ("Slurm temporarily unable to accept job, sleeping and retrying"): past this bound the
# submission's fate is unknown, and said so (SbatchUnanswered).
QUERY_TIMEOUT_S = 30
SBATCH_TIMEOUT_S = 60


class SlurmCommandError(AexpError):
    """A SLURM command could not be run or refused (its last line of output says why)."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"{command}: {reason}")
        self.command = command
        self.reason = reason


class SbatchRefused(SlurmCommandError):
    """sbatch refused a submission: nothing was queued for it."""


class SbatchUnanswered(SlurmCommandError):
    """sbatch did not answer in time: the submission may or may not have been queued."""


def _run(args: Sequence[str], *, timeout: float, stdin: str | None = None) -> str:
    """stdout of `args`; SlurmCommandError with the command's last error line otherwise."""
    try:
        done = subprocess.run(
            list(args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise SlurmCommandError(args[0], "not installed here") from None
    except subprocess.TimeoutExpired:
        raise SlurmCommandError(args[0], f"no answer within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise SlurmCommandError(args[0], last_line(done.stderr or done.stdout))
    return done.stdout


def last_line(text: str) -> str:
    """The last non-empty line of a command's output, without SLURM's `<cmd>: error: ` prefixes."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    line = lines[-1]
    for prefix in ("sbatch: error: ", "squeue: error: ", "scontrol: error: ", "sacctmgr: error: "):
        line = line.removeprefix(prefix)
    return line.removeprefix("Batch job submission failed: ")


def sbatch(script: str, flags: Sequence[str] = (), *, timeout: float = SBATCH_TIMEOUT_S) -> str:
    """Submit `script` (its text, on sbatch's stdin) with `flags`; returns the SLURM job id
    sbatch printed (`--parsable`: `<id>` or `<id>;<cluster>`).

    Raises SbatchRefused (nothing queued: its reason) or SbatchUnanswered (no answer within
    `timeout`: it may have been queued).
    """
    args = ["sbatch", "--parsable", *flags]
    try:
        done = subprocess.run(
            args, input=script, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise SbatchRefused("sbatch", "sbatch is not installed here") from None
    except subprocess.TimeoutExpired:
        raise SbatchUnanswered("sbatch", f"no answer within {timeout:.0f} s") from None
    job_id = (done.stdout or "").strip().split(";")[0].strip()
    if done.returncode != 0 or not job_id.isdigit():
        raise SbatchRefused("sbatch", last_line(done.stderr or done.stdout))
    return job_id


@dataclass(frozen=True)
class QueueRow:
    """One job in SLURM's queue as squeue lists it."""

    job_id: str
    state: str  # PENDING, RUNNING, ... (squeue %T)
    reason: str  # why it is pending (DependencyNeverSatisfied, Dependency, Priority, None)
    dependency: str  # e.g. "afterok:131(failed)"; "" for none
    name: str
    user: str


def queue(*, user: str | None = None, every_state: bool = False) -> list[QueueRow]:
    """The jobs in SLURM's queue: of `user` (None: every user's); `every_state`: also those
    that ended and are still kept by the controller (MinJobAge), as MaxJobCount counts them.
    Raises SlurmCommandError when squeue cannot answer."""
    args = ["squeue", "-h", "-o", "%i|%T|%r|%E|%u|%j"]
    if user:
        args += ["-u", user]
    if every_state:
        args += ["-t", "all"]
    rows = []
    for line in _run(args, timeout=QUERY_TIMEOUT_S).splitlines():
        parts = line.split("|", 5)
        if len(parts) == 6:
            job_id, state, reason, dependency, who, name = parts
            dependency = "" if dependency in ("(null)", "") else dependency
            rows.append(QueueRow(job_id, state, reason, dependency, name, who))
    return rows


def config() -> dict[str, str]:
    """`scontrol show config` as {key: value}. Raises SlurmCommandError."""
    values = {}
    for line in _run(["scontrol", "show", "config"], timeout=QUERY_TIMEOUT_S).splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            values[key.strip()] = value.strip()
    return values


def sacctmgr(*args: str) -> list[dict[str, str]]:
    """`sacctmgr -nP show ...` rows as dicts of the asked `format=` fields (lower-case names).
    Raises SlurmCommandError where accounting is not readable (no slurmdbd, no permission)."""
    fields = next((a.split("=", 1)[1] for a in args if a.lower().startswith("format=")), "")
    names = [f.strip().lower() for f in fields.split(",") if f.strip()]
    out = _run(["sacctmgr", "-nP", "show", *args], timeout=QUERY_TIMEOUT_S)
    return [dict(zip(names, line.split("|"), strict=False)) for line in out.splitlines() if line]


def update_dependency(job_ids: Sequence[str], dependency: str) -> None:
    """Set the dependency of pending jobs (`""`: none, they may start). Raises
    SlurmCommandError."""
    for job_id in job_ids:
        _run(
            ["scontrol", "update", f"JobId={job_id}", f"Dependency={dependency}"],
            timeout=QUERY_TIMEOUT_S,
        )


def signal_batch_shell(job_id: str, signal_name: str) -> None:
    """Send SIG`signal_name` to the batch shell of SLURM job `job_id`, as SLURM's own warning
    before the time limit does (`--signal=B:`). Raises SlurmCommandError."""
    _run(["scancel", "--batch", f"--signal={signal_name}", job_id], timeout=QUERY_TIMEOUT_S)


def current_user() -> str:
    """The user SLURM counts this process's jobs under."""
    return os.environ.get("SLURM_JOB_USER") or getpass.getuser()


def option_values(flags: Sequence[str] | None, long: str, short: str) -> list[str]:
    """The values sbatch flags give one option, in order (sbatch takes the last): `long=x`,
    `long x`, `short x` and `shortx` (e.g. "--qos"/"-q", "--time"/"-t")."""
    items = list(flags or ())
    found = []
    for index, flag in enumerate(items):
        if flag.startswith(long + "="):
            found.append(flag.split("=", 1)[1])
        elif flag in (long, short) and index + 1 < len(items):
            found.append(items[index + 1])
        elif flag.startswith(short) and len(flag) > len(short) and not flag.startswith("--"):
            found.append(flag[len(short) :])
    return found


__all__ = [
    "QUERY_TIMEOUT_S",
    "SBATCH_TIMEOUT_S",
    "QueueRow",
    "SbatchRefused",
    "SbatchUnanswered",
    "SlurmCommandError",
    "config",
    "current_user",
    "last_line",
    "option_values",
    "queue",
    "sacctmgr",
    "sbatch",
    "signal_batch_shell",
    "update_dependency",
]
