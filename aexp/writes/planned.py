"""Every write as a plan first, carried out only by its token (docs/agents.md).

    plan_write(root, "rearm", {"jobs": ["5d1f4c3e"]}, actor=...)   aexp.plan/1 (a token)
    apply_plan(root, token, actor=...)    the write's own document (aexp.rearm/1, ...)

The writes (WRITES) and what each takes:

    create_sweep  experiment, hypothesis, sp (the `--sp` grammar of `aexp new-run`)
    run_here      jobs (default: every eligible job), max_jobs, budget_s (wall-clock seconds)
    submit        jobs (default: every eligible job), max_jobs
    rearm         jobs (ids, unique prefixes or run ids)
    rerun         jobs, force
    remove        jobs or where/experiment/hypothesis/states (as `aexp remove`), force
    sync          jobs (default: every job that needs it), resync

A plan checks what it can before it is issued (every job found, each in a state the write
takes, the budget) and says what it leaves out. Applying it redeems the token (once, however
many clients try), then, under the project's write lock, refuses a plan whose jobs changed
since (`PlanError`, naming the first) or that the budget no longer allows, and else does
exactly what was planned with the library function the CLI uses (aexp.writes.jobs,
aexp.writes.sync, aexp.agent.launch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aexp.agent.budget import check_call, check_launch, limits_of
from aexp.agent.plans import ABSENT, Plan, PlanError, issue, redeem, write_lock
from aexp.errors import AexpError
from aexp.reports.status import JOB_STATES
from aexp.writes.planners import WRITES, Context


def _state(key: str) -> str:
    return "absent" if key == ABSENT else JOB_STATES[bytes.fromhex(key)[0]]


def changed_since(ctx: Context, plan: Plan) -> str | None:
    """The first job of the plan that is not as the plan found it, in one sentence; None."""
    now = ctx.basis(list(plan.basis))
    for job_id, then in plan.basis.items():
        if now[job_id] != then:
            was, is_ = _state(then), _state(now[job_id])
            moved = f"was {was}, is {is_} now" if was != is_ else f"still {is_}, but changed"
            return f"job {job_id} changed since the plan ({moved})"
    return None


_LAUNCHES = ("run_here", "submit")


def _budget(ctx: Context, plan: Plan) -> dict[str, Any]:
    """Check a launch against the budget (BudgetError); what the budget stands at."""
    from aexp.agent.launch import active_jobs

    if plan.action not in _LAUNCHES:
        check_call(ctx.settings.agent, plan.action, int(plan.cost.get("jobs", len(plan.jobs))))
        return limits_of(ctx.settings.agent)
    active = active_jobs(ctx.root, ctx.settings.stale_after)
    return check_launch(
        ctx.root,
        ctx.settings.agent,
        action=plan.action,
        jobs=plan.jobs,
        cost=plan.cost,
        active=active,
    )


def plan_write(
    root: str | os.PathLike, action: str, args: Mapping[str, Any], *, actor: Mapping[str, Any]
) -> dict[str, Any]:
    """Plan write `action` with `args` (module docstring): its `aexp.plan/1` with a token;
    nothing in the project changes. Raises AexpError (one sentence) for anything it refuses:
    unknown jobs, a state the write does not take, the budget (BudgetError)."""
    if action not in WRITES:
        raise AexpError(f"unknown write {action!r}; the writes are {', '.join(WRITES)}.")
    ctx = Context(os.fspath(root), dict(actor))
    plan = WRITES[action][0](ctx, **args)
    budget = _budget(ctx, plan)
    return issue(ctx.root, plan, actor=actor, ttl=ctx.settings.agent.plan_ttl, budget=budget)


def _handed(ctx: Context, plan: Plan) -> str | None:
    """A job of a launch that a run here still going was given already, in one sentence."""
    if plan.action not in _LAUNCHES:
        return None
    from aexp.agent.launch import live_runs

    for record in live_runs(ctx.root):
        taken = set(record.get("jobs", [])) & set(plan.jobs)
        if taken:
            return f"job {min(taken)} is being run by {record['handle']} (see run_progress)"
    return None


def apply_plan(root: str | os.PathLike, token: str, *, actor: Mapping[str, Any]) -> dict[str, Any]:
    """Carry out the plan of `token` if it still holds (module docstring); returns the write's
    own document. `actor`'s tool may hold "{action}", filled with the plan's write
    ("mcp:{action}" records "mcp:create_sweep"). Raises PlanError (unknown, used, expired, the
    project changed, or a launch's job is being run already), BudgetError, or what the write
    itself raises; the token is spent in every case."""
    with write_lock(root):
        plan, _kept = redeem(root, token)
        tool = str(actor.get("tool", "")).replace("{action}", plan.action)
        ctx = Context(os.fspath(root), {**actor, "tool": tool})
        moved = changed_since(ctx, plan) or _handed(ctx, plan)
        if moved:
            raise PlanError(f"{moved}; nothing done: make a new plan.")
        _budget(ctx, plan)
        return WRITES[plan.action][1](ctx, plan)


__all__ = ["apply_plan", "changed_since", "plan_write"]
