"""Does a SLURM submission leave time to work before its warning signal?

SLURM sends `[slurm] warning_signal` `warning_seconds` before the time limit (`--signal=B:...@N`);
the attempt then runs on to its next checkpoint, is recorded as preempted and the job requeues.
A walltime at or below the warning means the signal comes at (or before) the start: the job
requeues over and over doing almost nothing, and an epoch longer than what is left loops
forever. So `submit` refuses a walltime that leaves less than MIN_WORKING_WINDOW_S seconds
between the start and the warning.

Why 60 s: SLURM's time limits have a granularity of one minute (`--time` in minutes), SLURM
checks for due warnings only about every 30 s (docs/hpc.md: the warning comes between
warning_seconds and warning_seconds + 30 s before the limit), and an attempt needs ~5-15 s to
start Python, signac and W&B before its first step. Less than a minute of window is at best a
few seconds of work per requeue.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

from aexp.errors import SubmissionError
from aexp.slurm.commands import option_values

MIN_WORKING_WINDOW_S = 60

# sbatch --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; "INFINITE"/"UNLIMITED": no limit.
_SLURM_TIME = re.compile(
    r"^(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
    r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$"
)


def parse_slurm_time(text: str) -> float | None:
    """Seconds in a SLURM time string (`sbatch --time`), None for no limit or an unreadable one
    (then sbatch itself has the last word)."""
    match = _SLURM_TIME.match(text.strip())
    if not match:
        return None
    g = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "days" in g:
        return g["days"] * 86400 + g["dh"] * 3600 + g.get("dm", 0) * 60 + g.get("ds", 0)
    if "c" in g:  # H:M:S
        return g["a"] * 3600 + g["b"] * 60 + g["c"]
    return g["a"] * 60 + g.get("b", 0)  # M or M:S


def time_flag(flags: Sequence[str]) -> float | None:
    """The walltime, in seconds, that sbatch flags passed after `--` set (the last `--time` or
    `-t` wins, as sbatch takes it); None when they set none."""
    # Each is parsed: sbatch refuses a bad one even when a later one is good.
    seconds = [parse_slurm_time(value) for value in option_values(flags, "--time", "-t")]
    return seconds[-1] if seconds else None


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


def check_working_window(
    what: str, walltime_s: float | None, *, warning_seconds: int, warning_signal: str
) -> None:
    """Raise SubmissionError when `walltime_s` leaves less than MIN_WORKING_WINDOW_S seconds of
    work before the warning signal. `what` names the submission (operation and job). A walltime
    of None (no limit asked for: the partition's default applies) is not judged.
    """
    if walltime_s is None:
        return
    window = walltime_s - warning_seconds
    if window >= MIN_WORKING_WINDOW_S:
        return
    needed = warning_seconds + MIN_WORKING_WINDOW_S
    raise SubmissionError(
        f"submit refused: {what} has a walltime of {_clock(walltime_s)} ({walltime_s:.0f} s), "
        f"but SIG{warning_signal} comes {warning_seconds} s before the end ([slurm] "
        f"warning_seconds), which leaves {max(window, 0):.0f} s to work; give it at least "
        f"{_clock(needed)} or lower warning_seconds (docs/hpc.md); nothing was submitted."
    )


__all__ = ["MIN_WORKING_WINDOW_S", "check_working_window", "parse_slurm_time", "time_flag"]
