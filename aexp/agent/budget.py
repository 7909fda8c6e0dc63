"""The budget of an AI agent: `[agent]` in signac.rc (docs/agents.md, "The budget").

    max_jobs_per_call    jobs one write may touch (a sweep to create, jobs to run, rerun, ...)
    max_active           jobs running or queued at once, counting what a launch would add
    cpu_hours_per_day    CPU-hours of launches in any 24 hours (np x walltime of each job)
    gpu_hours_per_day    GPU-hours likewise (ngpu x walltime)

The MCP server checks every write against it when it plans the write and again when it
executes it; `python project.py submit` checks a submission made by an agent (its session
variable set, aexp.agent.actor). What was refused is one sentence, `BudgetError`, naming the
limit and what to do; nothing is done then. Hours launched are counted from the project's
action log (aexp.agent.history): the launches of agents in the last 24 hours.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aexp.agent.history import read_actions
from aexp.errors import AexpError

LAUNCHES = ("launch", "submit")  # the actions that start work (and cost hours)
_JOB_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{32})(?![0-9a-f])")


class BudgetError(AexpError):
    """A write the budget refuses: one sentence naming the limit and what to do."""


def hours_launched(root: str | os.PathLike, *, within_s: float = 86400.0) -> tuple[float, float]:
    """CPU- and GPU-hours that agents launched in the last `within_s` seconds (the log's
    `launch` and `submit` actions)."""
    since = datetime.now(UTC) - timedelta(seconds=within_s)
    cpu = gpu = 0.0
    for entry in read_actions(root):
        actor = entry.get("actor") or {}
        cost = entry.get("cost")
        if entry.get("action") not in LAUNCHES or actor.get("kind") != "agent":
            continue
        if not isinstance(cost, dict):
            continue
        try:
            at = datetime.fromisoformat(entry["at"])
        except (KeyError, TypeError, ValueError):
            continue
        if at >= since:
            cpu += float(cost.get("cpu_hours") or 0)
            gpu += float(cost.get("gpu_hours") or 0)
    return cpu, gpu


def queued_job_ids(workspace: str) -> set[str]:
    """The jobs of `workspace` that SLURM holds for this user (pending or running), by the job
    name flow gives a submission (`<Project>/<job id>/<operations>/<hash>`); none where SLURM
    is not installed or does not answer."""
    squeue = shutil.which("squeue")
    if squeue is None:
        return set()
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
    try:
        out = subprocess.run(
            [squeue, "-h", "-u", user, "-o", "%j"] if user else [squeue, "-h", "-o", "%j"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    ids = {m.group(1) for line in out.splitlines() for m in _JOB_ID.finditer(line)}
    return {job_id for job_id in ids if os.path.isdir(os.path.join(workspace, job_id))}


def limits_of(agent: Any) -> dict[str, Any]:
    """The [agent] limits as a plan shows them (None: unlimited)."""
    return {
        "max_jobs_per_call": agent.max_jobs_per_call,
        "max_active": agent.max_active,
        "cpu_hours_per_day": agent.cpu_hours_per_day,
        "gpu_hours_per_day": agent.gpu_hours_per_day,
    }


def _hours(value: float) -> str:
    return f"{value:.3g}"


def check_call(agent: Any, action: str, jobs: int) -> None:
    """BudgetError when one call would touch more jobs than `max_jobs_per_call`."""
    limit = agent.max_jobs_per_call
    if limit is not None and jobs > limit:
        raise BudgetError(
            f"refused: this {action} touches {jobs} jobs, more than [agent] max_jobs_per_call "
            f"= {limit} allows; ask for {limit} or fewer at a time, or raise the limit in "
            "signac.rc."
        )


def check_launch(
    root: str | os.PathLike,
    agent: Any,
    *,
    action: str,
    jobs: Iterable[str],
    cost: Mapping[str, float],
    active: set[str],
) -> dict[str, Any]:
    """BudgetError when launching `jobs` at `cost` ({"cpu_hours", "gpu_hours"}) would pass a
    limit, given the jobs `active` now (running or queued). Returns what the budget stands at
    (limits, active, hours spent) for the plan to show."""
    jobs = set(jobs)
    check_call(agent, action, len(jobs))
    spent_cpu, spent_gpu = hours_launched(root)
    after = len(active | jobs)
    if agent.max_active is not None and after > agent.max_active and jobs - active:
        raise BudgetError(
            f"refused: {len(active)} jobs are running or queued and this {action} would make "
            f"{after}, past [agent] max_active = {agent.max_active}; wait for some to end, or "
            f"start {max(agent.max_active - len(active), 0)} or fewer."
        )
    for kind, spent, limit in (
        ("CPU", spent_cpu, agent.cpu_hours_per_day),
        ("GPU", spent_gpu, agent.gpu_hours_per_day),
    ):
        wanted = float(cost.get(f"{kind.lower()}_hours") or 0)
        if limit is not None and wanted > 0 and spent + wanted > limit:
            raise BudgetError(
                f"refused: this {action} would use {_hours(wanted)} {kind}-hours and agents "
                f"launched {_hours(spent)} in the last 24 hours, past [agent] "
                f"{kind.lower()}_hours_per_day = {_hours(limit)}; start fewer jobs, shorten "
                "their walltime directive, or wait."
            )
    return {
        **limits_of(agent),
        "active": len(active),
        "cpu_hours_24h": round(spent_cpu, 4),
        "gpu_hours_24h": round(spent_gpu, 4),
    }


def hours_of(walltime: Any) -> float | None:
    """A walltime directive in hours: a number of hours or a timedelta (None: none set)."""
    if walltime is None:
        return None
    if hasattr(walltime, "total_seconds"):
        return walltime.total_seconds() / 3600
    return float(walltime)


def cost_of(directives: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """CPU- and GPU-hours of what the given directives ask for: one mapping per operation of
    each job, with `np` (CPUs, default 1), `ngpu` (default 0) and `walltime` (hours, or a
    timedelta; an operation without one costs nothing countable)."""
    cpu = gpu = 0.0
    for d in directives:
        walltime = d.get("walltime")
        if walltime is None:
            continue
        hours = (
            walltime.total_seconds() / 3600
            if hasattr(walltime, "total_seconds")
            else float(walltime)
        )
        cpu += float(d.get("np") or 1) * hours
        gpu += float(d.get("ngpu") or 0) * hours
    return {"cpu_hours": round(cpu, 4), "gpu_hours": round(gpu, 4)}


__all__ = [
    "LAUNCHES",
    "BudgetError",
    "check_call",
    "check_launch",
    "cost_of",
    "hours_launched",
    "hours_of",
    "limits_of",
    "queued_job_ids",
]
