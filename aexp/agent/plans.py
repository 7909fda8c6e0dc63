"""Writes need a plan: a write is first described, costed and given a token; only the token,
brought back while the plan still holds, carries it out (docs/agents.md, "Plans and tokens").

    plan = Plan("rearm", "re-arm 2 failed runs ...", args={...}, jobs=[...], basis={...})
    doc = issue(root, plan, actor=..., ttl=600, budget={...})    aexp.plan/1, with its token
    plan = redeem(root, token)    the plan, once: PlanError if unknown, used or expired

A plan is kept in `<project>/.aexp/plans/<token>.json` (mode 0600), so any process of the
project can carry it out: another MCP server, `aexp apply TOKEN`. Redeeming renames the file
first (an atomic step only one process can take), so a token is carried out at most once
however many clients bring it back at the same time. Its `basis` is how each job it touches
looked when it was made (its status key, aexp.reports.status; "absent" for a job to create):
the executor compares it with the jobs as they are (`changed_since`) and refuses a plan whose
jobs moved on. `settings` is a checksum of signac.rc: a changed budget or backend makes a new
plan necessary too.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from aexp.agent.history import state_dir
from aexp.contract import document
from aexp.errors import AexpError

PLAN = "aexp.plan/1"
ABSENT = "absent"  # the basis of a job the plan creates
_TOKEN = re.compile(r"^p1-[0-9a-f]{32}$")


class PlanError(AexpError):
    """A token that carries out nothing: unknown, used, expired, or its plan no longer holds."""


@dataclass
class Plan:
    """A write, described before it is done.

    `action` names the write (an MCP write tool: "create_sweep", "run_here", ...), `summary`
    says in one sentence what it would do, `args` is everything executing it needs (JSON),
    `jobs` the job ids it touches, `basis` how each of them looked ({job id: key hex, or
    ABSENT}), `cost` {"jobs", "cpu_hours", "gpu_hours"}, `notes` what it leaves out and why.
    """

    action: str
    summary: str
    args: dict[str, Any] = field(default_factory=dict)
    jobs: list[str] = field(default_factory=list)
    basis: dict[str, str] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def settings_sum(root: str | os.PathLike) -> str:
    """A checksum of the project's signac.rc ("none" without one)."""
    try:
        with open(os.path.join(os.fspath(root), "signac.rc"), "rb") as fh:
            return f"{zlib.crc32(fh.read()):08x}"
    except FileNotFoundError:
        return "none"


def issue(
    root: str | os.PathLike,
    plan: Plan,
    *,
    actor: Mapping[str, Any],
    ttl: float,
    budget: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keep `plan` under a new token valid for `ttl` seconds; returns its `aexp.plan/1`."""
    token = "p1-" + secrets.token_hex(16)
    expires = time.time() + ttl
    expires_at = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
    kept = {
        "plan": asdict(plan),
        "actor": dict(actor),
        "expires": expires,
        "settings": settings_sum(root),
    }
    path = os.path.join(state_dir(root, "plans"), token + ".json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(kept, fh)
    _expire(os.path.dirname(path))
    return document(
        PLAN,
        token=token,
        action=plan.action,
        summary=plan.summary,
        jobs=plan.jobs,
        cost=plan.cost,
        budget=dict(budget or {}),
        notes=plan.notes,
        expires_at=expires_at,
        apply=f"apply_plan(token={token!r}) over MCP, or: aexp apply {token}",
    )


def _expire(where: str) -> None:
    """Remove plans that expired more than a day ago (never used)."""
    old = time.time() - 86400
    with os.scandir(where) as entries:
        for entry in entries:
            try:
                if entry.stat().st_mtime < old:
                    os.unlink(entry.path)
            except OSError:
                pass


def redeem(root: str | os.PathLike, token: str) -> tuple[Plan, dict[str, Any]]:
    """The plan of `token` and who made it; the token is spent by this call whatever follows.

    Raises PlanError for a token that is malformed, unknown, already used (by this or another
    process) or expired, or whose plan was made under another signac.rc.
    """
    gone = PlanError(
        f"plan token {token!r} is unknown or already used; make a new plan (call the write "
        "tool again without a token)."
    )
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise gone
    where = os.path.join(os.fspath(root), ".aexp", "plans")
    taken = os.path.join(where, f"{token}.taken-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(os.path.join(where, token + ".json"), taken)  # only one process wins
    except FileNotFoundError:
        raise gone from None
    try:
        with open(taken, encoding="utf-8") as fh:
            kept = json.load(fh)
    finally:
        os.unlink(taken)
    if time.time() > kept["expires"]:
        raise PlanError(
            f"plan token {token!r} has expired ([agent] plan_ttl); make a new plan and apply it "
            "sooner."
        )
    if kept.get("settings") != settings_sum(root):
        raise PlanError(
            "signac.rc changed since this plan was made (its budget or backends may differ); "
            "make a new plan."
        )
    return Plan(**kept["plan"]), kept


@contextmanager
def write_lock(root: str | os.PathLike) -> Iterator[None]:
    """The project's write lock (`.aexp/writes.lock`): a plan is checked and carried out under
    it, so two clients never both find the same jobs as their plans expect and both act."""
    import fcntl

    fd = os.open(
        os.path.join(state_dir(root), "writes.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


__all__ = ["ABSENT", "PLAN", "Plan", "PlanError", "issue", "redeem", "settings_sum", "write_lock"]
