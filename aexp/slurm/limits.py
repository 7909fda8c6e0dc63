"""The queue limits that apply to the user, and how many more SLURM jobs they let `submit` send.

    limits = learn_limits(settings, qos=None)
    limits.free          # None: no limit known; else the SLURM jobs that may still be queued
    limits.describe()    # "MaxSubmitJobs=10 (QOS normal): 4 queued, 6 free; ..."

Where each comes from (each only where it can be read; what cannot is said in `unread`):

    MaxSubmitJobs   the user's association (`sacctmgr show assoc`): jobs of the user queued or
                    running at once
    MaxSubmitPU     the QOS the jobs go to (`sacctmgr show qos`): `--qos` after `--`, else the
                    association's default QOS: the same count, per user
    MaxJobCount     the controller (`scontrol show config`): every job it holds, of every user,
                    ended ones kept for MinJobAge included; sbatch blocks and retries past it
    max_submit      `[slurm] max_submit` in signac.rc: your own cap, counted like MaxSubmitJobs

MaxArraySize is not among them: `submit` sends no job arrays (one SLURM job per bundle). A job
over a limit is refused by sbatch (MaxSubmitJobs, MaxSubmitPU) or blocks it (MaxJobCount); so
`submit` sends no more than `free` and holds back the rest, saying so (aexp.slurm.submission).
Without accounting (no slurmdbd) only MaxJobCount and max_submit are known: sbatch's own
refusal is then the last word, and `submit` reports it as such.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aexp.slurm import commands
from aexp.slurm.commands import QueueRow, SlurmCommandError

# Queue states that count against per-user submit limits (squeue's default listing): a job
# that ended is no longer counted.
_ACTIVE = frozenset(
    {"PENDING", "RUNNING", "SUSPENDED", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING"}
)


@dataclass(frozen=True)
class Limit:
    """One limit: its name, value, where it was read, and the jobs it counts now."""

    name: str  # MaxSubmitJobs, MaxSubmitPU, MaxJobCount, max_submit
    value: int
    source: str  # e.g. "QOS normal", "association root/ci", "scontrol show config", "signac.rc"
    used: int

    @property
    def free(self) -> int:
        return max(self.value - self.used, 0)

    def describe(self) -> str:
        return f"{self.name}={self.value} ({self.source}): {self.used} counted, {self.free} free"


@dataclass(frozen=True)
class Limits:
    """The limits that apply (`limits`) and what could not be read (`unread`, in words)."""

    limits: tuple[Limit, ...] = ()
    unread: tuple[str, ...] = field(default=())

    @property
    def free(self) -> int | None:
        """SLURM jobs that may still be queued under every known limit (None: no limit)."""
        return min((limit.free for limit in self.limits), default=None)

    @property
    def tightest(self) -> Limit | None:
        """The limit that leaves the least room (None: no limit)."""
        return min(self.limits, key=lambda limit: limit.free, default=None)

    def describe(self) -> str:
        """Every known limit in one line (or that none is known)."""
        if not self.limits:
            return "no queue limit known"
        return "; ".join(limit.describe() for limit in self.limits)


def _number(text: str | None) -> int | None:
    """A SLURM limit as printed: digits, or empty/"UNLIMITED"/"INFINITE" for none."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def qos_flag(flags: Sequence[str]) -> str | None:
    """The QOS that sbatch flags after `--` ask for (`--qos=x`, `--qos x`, `-q x`), if any."""
    values = commands.option_values(flags, "--qos", "-q")
    return values[-1] if values else None


def accounting_limits(
    user: str, qos: str | None, mine: int, sacctmgr: Callable[..., list[dict[str, str]]]
) -> list[Limit]:
    """MaxSubmitJobs of the user's association and MaxSubmitPU of the QOS (`qos`, else the
    association's default QOS) from `sacctmgr` (aexp.slurm.commands.sacctmgr: rows of dicts);
    `mine`: the user's jobs in the queue. Raises SlurmCommandError when not readable."""
    found = []
    rows = sacctmgr(
        "assoc", f"where user={user}", "format=cluster,account,user,partition,maxsubmit,defaultqos"
    )
    default_qos = None
    for row in rows:
        value = _number(row.get("maxsubmit"))
        where = "/".join(p for p in (row.get("cluster"), row.get("account")) if p)
        if value is not None:
            found.append(Limit("MaxSubmitJobs", value, f"association {where or user}", mine))
        default_qos = default_qos or (row.get("defaultqos") or "").strip() or None
    name = qos or default_qos or "normal"
    for row in sacctmgr("qos", f"where name={name}", "format=name,maxsubmitpu"):
        value = _number(row.get("maxsubmitpu"))
        if value is not None:
            found.append(Limit("MaxSubmitPU", value, f"QOS {row.get('name') or name}", mine))
    return found


def learn_limits(settings: Any, *, flags: Sequence[str] = (), user: str | None = None) -> Limits:
    """The limits that apply to `user` (default: this process's user) submitting with `flags`,
    each with the jobs it counts now (module docstring). Never raises: what cannot be read is
    named in `Limits.unread`."""
    user = user or commands.current_user()
    unread: list[str] = []
    limits: list[Limit] = []
    try:
        everyone = commands.queue(every_state=True)
    except SlurmCommandError as exc:
        return Limits((), (f"squeue ({exc.reason}): the queue cannot be counted",))
    mine = count_mine(everyone, user)
    cap = settings.slurm.max_submit
    if cap is not None:
        limits.append(Limit("max_submit", cap, "[slurm] max_submit in signac.rc", mine))
    try:
        limits.extend(accounting_limits(user, qos_flag(flags), mine, commands.sacctmgr))
    except SlurmCommandError as exc:
        unread.append(f"sacctmgr ({exc.reason}): association and QOS limits unknown")
    try:
        total = _number(commands.config().get("MaxJobCount"))
    except SlurmCommandError as exc:
        unread.append(f"scontrol show config ({exc.reason}): MaxJobCount unknown")
    else:
        if total is not None:
            limits.append(Limit("MaxJobCount", total, "scontrol show config", len(everyone)))
    return Limits(tuple(limits), tuple(unread))


def count_mine(rows: Sequence[QueueRow], user: str) -> int:
    """The user's jobs among `rows` that count against per-user submit limits."""
    return sum(1 for row in rows if row.user == user and row.state in _ACTIVE)


__all__ = ["Limit", "Limits", "accounting_limits", "count_mine", "learn_limits", "qos_flag"]
