"""The writes an agent (or `aexp ... --plan`) plans, each as a pair: the planner, which finds
and checks what the write would touch and returns a Plan (aexp.agent.plans) without changing
anything, and the applier, which carries a plan out with the library function the CLI uses
(aexp.writes.jobs, aexp.writes.sync, aexp.agent.launch). aexp.writes.planned ties them to
tokens, the project's write lock and the budget.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aexp.agent.budget import check_call
from aexp.agent.plans import ABSENT, Plan
from aexp.errors import AexpError
from aexp.reports.status import job_ids, job_seen

# The states `execute` takes up: what run_here and submit launch.
LAUNCHABLE = ("unbound", "bound", "preempted")


@dataclass
class Context:
    """A write's project (its root, signac project and settings, read once) and actor."""

    root: str
    actor: dict[str, Any]

    @functools.cached_property
    def settings(self) -> Any:
        from aexp.settings import load_settings

        return load_settings(self.root)

    @functools.cached_property
    def project(self) -> Any:
        from aexp.jobs import open_project

        return open_project(self.root)

    @property
    def workspace(self) -> str:
        return os.path.join(self.root, "workspace")

    def jobs(self, idents: Sequence[str]) -> list[Any]:
        """The jobs named by ids, unique prefixes or run ids (each once). JobNotFoundError."""
        from aexp.jobs import find_job

        if not idents:
            raise AexpError("name at least one job (a job id, a unique prefix or a run id).")
        found: dict[str, Any] = {}
        for ident in idents:
            job = find_job(self.project, str(ident))
            found.setdefault(job.id, job)
        return list(found.values())

    def basis(self, ids: Sequence[str]) -> dict[str, str]:
        """How each job looks now: its status key in hex, or ABSENT."""
        stale_after = self.settings.stale_after
        return {
            job_id: job_seen(self.workspace, job_id, stale_after).key.hex()
            if os.path.isdir(os.path.join(self.workspace, job_id))
            else ABSENT
            for job_id in ids
        }


def _eligible(
    ctx: Context, idents: Sequence[str] | None, max_jobs: int
) -> tuple[list[str], list[str]]:
    """The jobs a launch takes up (LAUNCHABLE, or running with a dead attempt), at most
    `max_jobs`, and notes on what was left out."""
    stale_after = ctx.settings.stale_after
    ids = [job.id for job in ctx.jobs(idents)] if idents else job_ids(ctx.workspace)
    chosen, skipped = [], {}
    for job_id in ids:
        entry = job_seen(ctx.workspace, job_id, stale_after).entry
        if entry["state"] in LAUNCHABLE or (entry["state"] == "running" and entry["stale"]):
            chosen.append(job_id)
        else:
            skipped[entry["state"]] = skipped.get(entry["state"], 0) + 1
    notes = [f"{n} {state} job(s) left out: nothing to run" for state, n in skipped.items()]
    if max_jobs < 1:
        raise AexpError(f"max_jobs must be at least 1, not {max_jobs}.")
    if len(chosen) > max_jobs:
        notes.append(f"{len(chosen) - max_jobs} more eligible job(s) left for a later call")
        chosen = chosen[:max_jobs]
    if not chosen:
        raise AexpError(
            "no job to run: none is unbound, bound, preempted or stale"
            + (f" ({'; '.join(notes)})." if notes else ".")
        )
    return chosen, notes


def _launch_cost(ctx: Context, ids: Sequence[str], budget_s: float | None) -> dict[str, float]:
    from aexp.agent.budget import cost_of
    from aexp.agent.costs import directives_of

    directives = directives_of(ctx.root, ids)
    cost = {"jobs": len(ids), **cost_of(d for ops in directives.values() for d in ops)}
    if budget_s is not None:  # a run here stops when its wall clock is spent
        widest = max((d.get("np") or 1 for ops in directives.values() for d in ops), default=1)
        gpus = max((d.get("ngpu") or 0 for ops in directives.values() for d in ops), default=0)
        cost["cpu_hours"] = round(min(cost["cpu_hours"], budget_s / 3600 * widest), 4)
        cost["gpu_hours"] = round(min(cost["gpu_hours"], budget_s / 3600 * gpus), 4)
    return cost


# -- the writes: plan and apply ---------------------------------------------------------------
def _plan_create_sweep(
    ctx: Context, *, experiment: str, sp: Sequence[str], hypothesis: str | None = None
) -> Plan:
    from aexp.cli.sweep import parse_sp
    from aexp.jobs import full_statepoint

    notes: list[str] = []
    points = parse_sp(list(sp), warn=notes.append)
    ids = [ctx.project.open_job(full_statepoint(experiment, hypothesis, p)).id for p in points]
    basis = ctx.basis(ids)
    new = [job_id for job_id in ids if basis[job_id] == ABSENT]
    if len(new) < len(ids):
        notes.append(
            f"{len(ids) - len(new)} of the {len(ids)} jobs exist already (left as they are)"
        )
    check_call(ctx.settings.agent, "sweep", len(new))
    where = f"{hypothesis}/{experiment}" if hypothesis else experiment
    return Plan(
        "create_sweep",
        f"create {len(new)} new job(s) of {where} from --sp {' '.join(sp)}",
        args={"experiment": experiment, "hypothesis": hypothesis, "points": points},
        jobs=ids,
        basis=basis,
        cost={"jobs": len(new), "cpu_hours": 0.0, "gpu_hours": 0.0},
        notes=notes,
    )


def _apply_create_sweep(ctx: Context, plan: Plan) -> dict[str, Any]:
    from aexp.writes.jobs import create_sweep

    a = plan.args
    return create_sweep(ctx.project, a["experiment"], a["hypothesis"], a["points"], actor=ctx.actor)


def _plan_run_here(
    ctx: Context, *, budget_s: float, jobs: Sequence[str] | None = None, max_jobs: int = 10
) -> Plan:
    if not budget_s > 0:
        raise AexpError(f"budget_s must be a positive number of seconds, not {budget_s!r}.")
    ids, notes = _eligible(ctx, jobs, max_jobs)
    cost = _launch_cost(ctx, ids, budget_s)
    return Plan(
        "run_here",
        f"run {len(ids)} job(s) here with python project.py run, for at most {budget_s:g} s "
        "of wall clock (then they are preempted and resume next time)",
        args={"jobs": ids, "budget_s": float(budget_s)},
        jobs=ids,
        basis=ctx.basis(ids),
        cost=cost,
        notes=notes,
    )


def _apply_run_here(ctx: Context, plan: Plan) -> dict[str, Any]:
    from aexp.agent.launch import start_run_here

    return start_run_here(
        ctx.root,
        plan.args["jobs"],
        budget_s=plan.args["budget_s"],
        grace_s=ctx.settings.agent.grace,
        actor=ctx.actor,
        cost=plan.cost,
    )


def _plan_submit(ctx: Context, *, jobs: Sequence[str] | None = None, max_jobs: int = 10) -> Plan:
    if shutil.which("sbatch") is None:
        raise AexpError("no SLURM here (sbatch is not on PATH); run the jobs here with run_here.")
    ids, notes = _eligible(ctx, jobs, max_jobs)
    return Plan(
        "submit",
        f"submit {len(ids)} job(s) to SLURM with python project.py submit",
        args={"jobs": ids},
        jobs=ids,
        basis=ctx.basis(ids),
        cost=_launch_cost(ctx, ids, None),
        notes=notes,
    )


def _apply_submit(ctx: Context, plan: Plan) -> dict[str, Any]:
    from aexp.agent.launch import submit_jobs

    return submit_jobs(ctx.root, plan.args["jobs"], actor=ctx.actor)


def _plan_jobs_write(
    ctx: Context, action: str, jobs: Sequence[str], check: Callable, what: str, **args: Any
) -> Plan:
    found = ctx.jobs(jobs)
    for job in found:
        check(job)
    ids = [job.id for job in found]
    check_call(ctx.settings.agent, action, len(ids))
    return Plan(
        action,
        f"{what} {len(ids)} job(s)",
        args={"jobs": ids, **args},
        jobs=ids,
        basis=ctx.basis(ids),
        cost={"jobs": len(ids), "cpu_hours": 0.0, "gpu_hours": 0.0},
    )


def _plan_rearm(ctx: Context, *, jobs: Sequence[str]) -> Plan:
    from aexp.rearming import check_rearmable

    return _plan_jobs_write(
        ctx, "rearm", jobs, check_rearmable, "re-arm (the same run continues) the failed run of"
    )


def _apply_rearm(ctx: Context, plan: Plan) -> dict[str, Any]:
    from aexp.writes.jobs import rearm_jobs

    return rearm_jobs(ctx.jobs(plan.args["jobs"]), actor=ctx.actor)


def _plan_rerun(ctx: Context, *, jobs: Sequence[str], force: bool = False) -> Plan:
    from aexp.rerun import check_rerunnable

    def check(job: Any) -> None:
        check_rerunnable(job, force=force)

    return _plan_jobs_write(
        ctx, "rerun", jobs, check, "run again as a new run (the old one kept)", force=force
    )


def _apply_rerun(ctx: Context, plan: Plan) -> dict[str, Any]:
    from aexp.writes.jobs import rerun_jobs

    return rerun_jobs(ctx.jobs(plan.args["jobs"]), actor=ctx.actor, force=plan.args["force"])


def _removal(ctx: Context, args: Mapping[str, Any]) -> list[Any]:
    import dataclasses

    from aexp.cli.sweep import parse_where
    from aexp.results import iter_records
    from aexp.results.select import Selection

    selection = Selection(
        where=parse_where(args.get("where") or []),
        experiment=args.get("experiment"),
        hypothesis=args.get("hypothesis"),
        states=tuple(args.get("states") or ()),
    )
    if not args.get("jobs") and not selection.describe():
        raise AexpError(
            "name the jobs to remove, or select them with where, experiment, hypothesis or states."
        )
    if args.get("jobs"):
        named = frozenset(job.id for job in ctx.jobs(args["jobs"]))
        selection = dataclasses.replace(selection, job_ids=named)
    records = list(iter_records(ctx.project, selection, group_by=ctx.settings.group_by))
    if not records:
        raise AexpError("no jobs match; nothing to remove.")
    return records


def _plan_remove(ctx: Context, **args: Any) -> Plan:
    from aexp.writes.jobs import check_removable

    records = _removal(ctx, args)
    check_removable(
        ctx.project, records, stale_after=ctx.settings.stale_after, force=bool(args.get("force"))
    )
    ids = [r.job_id for r in records]
    check_call(ctx.settings.agent, "removal", len(ids))
    return Plan(
        "remove",
        f"delete {len(ids)} job(s) with their runs and files",
        args={"jobs": ids, "force": bool(args.get("force"))},
        jobs=ids,
        basis=ctx.basis(ids),
        cost={"jobs": len(ids), "cpu_hours": 0.0, "gpu_hours": 0.0},
    )


def _apply_remove(ctx: Context, plan: Plan) -> dict[str, Any]:
    from aexp.writes.jobs import check_removable, remove_jobs

    records = _removal(ctx, {"jobs": plan.args["jobs"]})
    force = plan.args["force"]
    check_removable(ctx.project, records, stale_after=ctx.settings.stale_after, force=force)
    return remove_jobs(ctx.project, records, actor=ctx.actor, force=force)


def _plan_sync(ctx: Context, *, jobs: Sequence[str] | None = None, resync: bool = False) -> Plan:
    from aexp.writes.sync import sync_document

    named = [job.id for job in ctx.jobs(jobs)] if jobs else None
    dry = sync_document(ctx.root, job_ids=named, dry_run=True, resync=resync, settings=ctx.settings)
    ids = dry["jobs"]
    if not ids:
        raise AexpError("nothing to sync: every run that needs a login node is synced already.")
    check_call(ctx.settings.agent, "sync", len(ids))
    return Plan(
        "sync",
        f"sync the runs of {len(ids)} job(s) to their backends ({dry['summary']})",
        args={"jobs": ids, "resync": resync},
        jobs=ids,
        basis=ctx.basis(ids),
        cost={"jobs": len(ids), "cpu_hours": 0.0, "gpu_hours": 0.0},
    )


def _apply_sync(ctx: Context, plan: Plan) -> dict[str, Any]:
    from aexp.writes.sync import sync_document

    a = plan.args
    return sync_document(
        ctx.root, job_ids=a["jobs"], resync=a["resync"], settings=ctx.settings, actor=ctx.actor
    )


WRITES: dict[str, tuple[Callable[..., Plan], Callable[[Context, Plan], dict[str, Any]]]] = {
    "create_sweep": (_plan_create_sweep, _apply_create_sweep),
    "run_here": (_plan_run_here, _apply_run_here),
    "submit": (_plan_submit, _apply_submit),
    "rearm": (_plan_rearm, _apply_rearm),
    "rerun": (_plan_rerun, _apply_rerun),
    "remove": (_plan_remove, _apply_remove),
    "sync": (_plan_sync, _apply_sync),
}


__all__ = ["LAUNCHABLE", "WRITES", "Context"]
