"""Walltime and memory sized from past attempts: `aexp resources`, `[slurm] walltime = auto`.

Every attempt's `finish` event in its run's journal records its wall time (`wall_s`) and the
peak memory of its process tree (`peak_rss_mb`, aexp.usage). From those of a project's runs:

    walltime   what a job needs to finish in one allocation: per finished run the sum of its
               attempts' wall times (a resumed run did its work across several), the QUANTILE
               of those (nearest rank: with few runs, the largest), times 1 + MARGIN, plus the
               warning that comes `[slurm] warning_seconds` before the limit and SLURM's 30 s
               check interval (docs/hpc.md), rounded up to a whole minute
    memory     per run the largest peak of its attempts (finished, failed or preempted), the
               QUANTILE of those, times 1 + MARGIN, rounded up to a multiple of 64 MiB

each with n, the runs it rests on. An attempt preempted by the warning signal (exit code 128 +
`[slurm] warning_signal`, not by the stall watch) ran into its time limit: those are counted and
their jobs named, because they say the walltime was too short (their runs resumed, and their
finished totals are in the walltime above). Attempts killed outright (SIGKILL, the OOM killer)
write no `finish`: they are not measured.

Only `execute` opens runs and attempts; its sizes are the sizes of the group `run_job` that
`submit` sends (init_tracker and finish take a second). `submit` uses them with `walltime = auto`
/ `memory = auto` once MIN_RUNS runs back them (else the operations' directives stand).
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aexp.journal import JOURNAL_DIR, JOURNAL_FILE
from aexp.results.workspace import job_dirs

QUANTILE = 0.95
MARGIN = 0.25
MIN_RUNS = 3
SLURM_CHECK_S = 30  # SLURM looks at time limits (and sends the warning) about this often
MEMORY_STEP_MB = 64
OPERATION = "execute"  # the operation whose attempts the journals record
_FINISH = b'"event": "finish"'


@dataclass(frozen=True)
class AttemptUse:
    """What one attempt used and how it ended, from its `finish` event."""

    attempt: int | None
    wall_s: float | None
    peak_rss_mb: float | None
    exit_code: int
    preempted: bool
    stalled: bool


@dataclass
class RunUse:
    """The measured attempts of one run of one job."""

    job_id: str
    run_id: str
    attempts: list[AttemptUse] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Its last attempt completed (exit code 0, not preempted)."""
        last = self.attempts[-1] if self.attempts else None
        return bool(last and last.exit_code == 0 and not last.preempted)

    @property
    def wall_s(self) -> float | None:
        """The wall time of all its attempts (None: one was not measured)."""
        walls = [a.wall_s for a in self.attempts]
        return None if not walls or None in walls else float(sum(walls))  # type: ignore[arg-type]

    @property
    def peak_rss_mb(self) -> float | None:
        peaks = [a.peak_rss_mb for a in self.attempts if a.peak_rss_mb is not None]
        return max(peaks) if peaks else None


def _finish_of(line: bytes) -> AttemptUse | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") != "finish":
        return None
    code = event.get("exit_code")
    number = event.get("attempt")

    def num(key: str) -> float | None:
        value = event.get(key)
        return float(value) if type(value) in (int, float) and math.isfinite(value) else None

    return AttemptUse(
        attempt=number if type(number) is int else None,
        wall_s=num("wall_s"),
        peak_rss_mb=num("peak_rss_mb"),
        exit_code=code if type(code) is int else 1,
        preempted=event.get("preempted") is True,
        stalled=event.get("stalled") is True,
    )


def read_uses(path: str | os.PathLike) -> list[AttemptUse]:
    """The `finish` events of a journal, in order. A run of one attempt (the common case) costs
    a read of the journal's last 4 KiB: its last event is its only `finish`."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 4096))
            tail = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
            last = _finish_of(tail) if _FINISH in tail else None
            if last is not None and last.attempt == 1:
                return [last]
            fh.seek(0)
            return [use for line in fh if _FINISH in line and (use := _finish_of(line))]
    except OSError:
        return []


def project_runs(root: str | os.PathLike) -> Iterator[RunUse]:
    """The measured runs of every job of the project at `root` (each job's current run and
    its earlier ones: every journal in its tracker_log)."""
    for job_id, path in job_dirs(root):
        base = os.path.join(path, JOURNAL_DIR)
        try:
            run_ids = sorted(os.listdir(base))
        except OSError:
            continue
        for run_id in run_ids:
            uses = read_uses(os.path.join(base, run_id, JOURNAL_FILE))
            if uses:
                yield RunUse(job_id, run_id, uses)


def nearest_rank(values: list[float], q: float) -> float:
    """The q-quantile of `values` by nearest rank (the ceil(q n)-th smallest)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


@dataclass(frozen=True)
class Suggestion:
    """Sizes for one operation from past attempts (module docstring); None where no run
    backs them."""

    operation: str
    walltime_s: int | None
    wall_quantile_s: float | None
    wall_runs: int
    memory_mb: int | None
    memory_quantile_mb: float | None
    memory_runs: int
    at_limit: dict[str, int]  # job id -> attempts preempted at the time limit
    stalled: int  # attempts preempted by the stall watch
    quantile: float = QUANTILE
    margin: float = MARGIN

    @property
    def at_limit_attempts(self) -> int:
        return sum(self.at_limit.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "walltime_s": self.walltime_s,
            "wall_quantile_s": self.wall_quantile_s,
            "wall_runs": self.wall_runs,
            "memory_mb": self.memory_mb,
            "memory_quantile_mb": self.memory_quantile_mb,
            "memory_runs": self.memory_runs,
            "at_time_limit": {"attempts": self.at_limit_attempts, "jobs": dict(self.at_limit)},
            "stalled_attempts": self.stalled,
            "quantile": self.quantile,
            "margin": self.margin,
        }


def suggest(
    runs: list[RunUse],
    *,
    warning_seconds: int = 120,
    warning_signal: str = "USR1",
    quantile: float = QUANTILE,
    margin: float = MARGIN,
    operation: str = OPERATION,
) -> Suggestion:
    """The sizes `runs` suggest (module docstring)."""
    walls = [w for run in runs if run.finished and (w := run.wall_s) is not None]
    peaks = [p for run in runs if (p := run.peak_rss_mb) is not None]
    limit_code = 128 + int(getattr(signal, f"SIG{warning_signal}"))
    at_limit: dict[str, int] = {}
    stalled = 0
    for run in runs:
        for use in run.attempts:
            stalled += use.stalled
            if use.preempted and not use.stalled and use.exit_code == limit_code:
                at_limit[run.job_id] = at_limit.get(run.job_id, 0) + 1
    wall_q = nearest_rank(walls, quantile) if walls else None
    mem_q = nearest_rank(peaks, quantile) if peaks else None
    walltime = None
    if wall_q is not None:
        seconds = wall_q * (1 + margin) + warning_seconds + SLURM_CHECK_S
        walltime = math.ceil(seconds / 60) * 60
    memory = None
    if mem_q is not None:
        memory = math.ceil(mem_q * (1 + margin) / MEMORY_STEP_MB) * MEMORY_STEP_MB
    return Suggestion(
        operation,
        walltime,
        wall_q,
        len(walls),
        memory,
        mem_q,
        len(peaks),
        at_limit,
        stalled,
        quantile,
        margin,
    )


def project_sizes(root: str | os.PathLike, settings: Any) -> Suggestion | None:
    """The sizes a project's past attempts suggest when its `[slurm] walltime` or `memory` is
    `auto` (None otherwise, or when no attempt was measured)."""
    slurm = settings.slurm
    if "auto" not in (slurm.walltime, slurm.memory):
        return None
    runs = list(project_runs(root))
    if not runs:
        return None
    return suggest(runs, warning_seconds=slurm.warning_seconds, warning_signal=slurm.warning_signal)


def auto_walltime(sizes: Suggestion | None, settings: Any) -> float | None:
    """The walltime in seconds `[slurm] walltime = auto` gives one operation, when MIN_RUNS
    finished runs back it (else None: the directives stand)."""
    if settings.slurm.walltime != "auto" or sizes is None or sizes.wall_runs < MIN_RUNS:
        return None
    return sizes.walltime_s


__all__ = [
    "MARGIN",
    "MIN_RUNS",
    "OPERATION",
    "QUANTILE",
    "AttemptUse",
    "RunUse",
    "Suggestion",
    "auto_walltime",
    "nearest_rank",
    "project_runs",
    "project_sizes",
    "read_uses",
    "suggest",
]
