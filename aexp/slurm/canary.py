"""The canary's record, and what `status` says of the SLURM jobs held behind it.

`submit --canary N` sends N jobs first and the rest with `--dependency=afterok:<canary ids>
--kill-on-invalid-dep=no`. SLURM starts the rest once every canary has completed with exit
code 0. A canary that fails (or is cancelled, or times out) makes that dependency impossible:
SLURM keeps the rest pending with the reason `DependencyNeverSatisfied`, and they never start.

Why held, not cancelled (`--kill-on-invalid-dep=yes` would cancel them): a cancelled job leaves
the queue, so the next `submit` would send it again, without a gate, and the bug the canary
caught would burn the whole sweep after all. Held jobs stay in the queue (flow shows them `[Q]`
and never sends them twice); `status` names the failed canary and says what to do; after the fix,
`submit --canary` moves them behind its new canary, which releases them when it succeeds; a plain
`submit` leaves them held (it must not let loose what a canary caught); `scancel` drops them.

The record, `<project>/logs/canary.json`: {"canaries": {<SLURM job id>: {"jobs": [job ids],
"name": <SLURM job name>, "submitted_at": ISO time}}}, the newest KEEP entries, written by each
`submit` that sends a canary (atomically: a temporary file renamed over it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aexp.slurm.commands import QueueRow

RECORD = "canary.json"
KEEP = 200
NEVER = "DependencyNeverSatisfied"
_DEPENDS_ON = re.compile(r"after\w*:([\d:_*]+)")


def record_path(log_dir: str | os.PathLike) -> Path:
    """Where the canary record of the project whose SLURM output goes to `log_dir` lives."""
    return Path(log_dir, RECORD)


def read_record(log_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The recorded canaries by SLURM job id ({} when none, or the record is unreadable)."""
    try:
        data = json.loads(record_path(log_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    canaries = data.get("canaries") if isinstance(data, dict) else None
    return canaries if isinstance(canaries, dict) else {}


def remember(
    log_dir: str | os.PathLike, sent: Iterable[tuple[str, str, Sequence[str]]], when: str
) -> None:
    """Add canaries `sent` ((SLURM job id, its name, its job ids), ...) to the record."""
    canaries = read_record(log_dir)
    for slurm_id, name, jobs in sent:
        canaries[slurm_id] = {"jobs": list(jobs), "name": name, "submitted_at": when}
    newest = dict(sorted(canaries.items(), key=lambda kv: int(kv[0]))[-KEEP:])
    path = record_path(log_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{RECORD}.{os.getpid()}")
    temporary.write_text(json.dumps({"canaries": newest}, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def depends_on(dependency: str) -> list[str]:
    """The SLURM job ids a dependency string names (`afterok:131(failed),afterok:132`)."""
    ids: list[str] = []
    for group in _DEPENDS_ON.findall(dependency or ""):
        ids += [part.split("_")[0] for part in group.split(":") if part.split("_")[0].isdigit()]
    return ids


@dataclass(frozen=True)
class Gate:
    """The SLURM jobs of this project that wait for one set of canaries."""

    canaries: tuple[str, ...]  # their SLURM job ids
    jobs: tuple[str, ...]  # the canaries' job ids (the sweep's)
    waiting: tuple[str, ...]  # SLURM ids of the jobs behind them
    never: bool  # SLURM says the dependency can never be satisfied: they are held for good


def gates(log_dir: str | os.PathLike, rows: Sequence[QueueRow]) -> list[Gate]:
    """The pending jobs among `rows` (squeue's) that wait for a recorded canary, by canary
    set, the held ones (DependencyNeverSatisfied) first."""
    record = read_record(log_dir)
    if not record:
        return []
    found: dict[tuple[tuple[str, ...], bool], list[str]] = {}
    for row in rows:
        if row.state != "PENDING":
            continue
        named = tuple(i for i in depends_on(row.dependency) if i in record)
        if named:
            found.setdefault((named, row.reason == NEVER), []).append(row.job_id)
    result = []
    for (canaries, never), waiting in found.items():
        jobs = tuple(j for c in canaries for j in record[c].get("jobs") or ())
        result.append(Gate(canaries, jobs, tuple(waiting), never))
    return sorted(result, key=lambda gate: (not gate.never, gate.canaries))


def status_lines(
    log_dir: str | os.PathLike, rows: Sequence[QueueRow], state_of: Callable[[str], str]
) -> list[str]:
    """What `status` says of the jobs behind canaries: for each canary set, one line. A held
    set names the canary, how its run ended (`state_of(job id)`), where its output is, and what
    to do."""
    lines = []
    for gate in gates(log_dir, rows):
        who = ", ".join(
            f"job {job} ({state_of(job)})" for job in gate.jobs
        ) or "SLURM job " + ", ".join(gate.canaries)
        slurm = ", ".join(gate.canaries)
        count = len(gate.waiting)
        if gate.never:
            outputs = ", ".join(str(Path(log_dir, f"slurm-{c}.out")) for c in gate.canaries)
            lines.append(
                f"held: {count} SLURM job{'s' * (count != 1)} of this sweep will never start: "
                f"their canary {who}, SLURM job {slurm}, did not succeed (see {outputs}). Fix "
                "it (aexp rearm <job id> for a failed run), then `python project.py submit "
                "--canary` puts them behind a new canary; scancel "
                f"{' '.join(gate.waiting[:3])}{' ...' * (count > 3)} drops them."
            )
        else:
            lines.append(
                f"gated: {count} SLURM job{'s' * (count != 1)} of this sweep "
                f"wait{'s' * (count == 1)} for their canary {who}, SLURM job {slurm}, to succeed."
            )
    return lines


def say_gates(workspace: str, log_dir: str, settings: Any, file: Any = None) -> None:
    """Print `status_lines` for the project (its workspace, its SLURM log directory); nothing
    when it never sent a canary or squeue does not answer."""
    if not record_path(log_dir).exists():
        return
    from aexp.jobdoc import JobDir
    from aexp.slurm import commands
    from aexp.state import job_state

    try:
        rows = commands.queue(user=commands.current_user())
    except commands.SlurmCommandError:
        return

    def state_of(job_id: str) -> str:
        job = JobDir(job_id, os.path.join(workspace, job_id))
        return job_state(job, stale_after=settings.stale_after).shown

    for line in status_lines(log_dir, rows, state_of):
        print(line, file=file or sys.stdout)


def held(log_dir: str | os.PathLike, rows: Sequence[QueueRow]) -> list[str]:
    """SLURM ids of this project's jobs held for good behind a failed canary."""
    return [job for gate in gates(log_dir, rows) if gate.never for job in gate.waiting]


def canary_jobs(record: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Every job id the record names as a canary."""
    return {job for entry in record.values() for job in entry.get("jobs") or ()}


__all__ = [
    "KEEP",
    "NEVER",
    "RECORD",
    "Gate",
    "canary_jobs",
    "depends_on",
    "gates",
    "held",
    "read_record",
    "record_path",
    "remember",
    "say_gates",
    "status_lines",
]
