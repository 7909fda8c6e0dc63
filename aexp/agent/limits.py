"""The `[agent]` section of signac.rc: how an AI agent is recognised, and its budget
(docs/agents.md, docs/settings.md). aexp.settings reads it with `read_agent_section`; the
budget is enforced by aexp.agent.budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from aexp.errors import SettingsError

# Every key of [agent] (docs/agents.md): what an AI agent may start, and how it is named.
AGENT_KEYS = (
    "session_env",
    "max_jobs_per_call",
    "max_active",
    "cpu_hours_per_day",
    "gpu_hours_per_day",
    "plan_ttl",
    "grace",
)


@dataclass(frozen=True)
class AgentSettings:
    """The [agent] section: the budget of an AI agent and how its session is named
    (docs/agents.md). A limit of None is `unlimited`."""

    session_env: str = "CLAUDE_CODE_SESSION_ID"  # the variable holding the agent's session id
    max_jobs_per_call: int | None = 100  # jobs one write may touch
    max_active: int | None = 100  # jobs running or queued at once, after a launch
    cpu_hours_per_day: float | None = 1000.0  # CPU-hours launched in any 24 hours
    gpu_hours_per_day: float | None = 24.0  # GPU-hours launched in any 24 hours
    plan_ttl: float = 600.0  # seconds a plan's token stays valid
    grace: float = 60.0  # seconds between SIGTERM and SIGKILL when a run's time is up


def read_agent_section(
    raw: Callable[[str, str], str | None],
    origin: Callable[[str, str], str],
    number: Callable[..., float],
) -> AgentSettings:
    """The [agent] section from load_settings' readers: `raw(section, key)` (the value, an
    environment override first), `origin(section, key)` (where it came from, for messages) and
    `number(section, key, default)` (a positive number). Raises SettingsError."""

    def limit(key: str, default: float, *, integer: bool = False) -> float | None:
        # A budget may be zero (no GPU-hours at all) or `unlimited`.
        value = raw("agent", key)
        if value is None or not value.strip():
            return default
        if value.strip().lower() == "unlimited":
            return None
        kind = "a whole number" if integer else "a number"
        try:
            parsed = int(value) if integer else float(value)
        except ValueError:
            parsed = -1
        if not (math.isfinite(parsed) and parsed >= 0):
            raise SettingsError(
                f"{origin('agent', key)} must be {kind} of at least 0 or unlimited, not {value!r}."
            )
        return parsed

    session_env = (raw("agent", "session_env") or "CLAUDE_CODE_SESSION_ID").strip()
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", session_env):
        raise SettingsError(
            f"{origin('agent', 'session_env')} must name an environment variable, "
            f"not {session_env!r}."
        )
    jobs, active = (
        limit("max_jobs_per_call", 100, integer=True),
        limit("max_active", 100, integer=True),
    )
    return AgentSettings(
        session_env=session_env,
        max_jobs_per_call=None if jobs is None else int(jobs),
        max_active=None if active is None else int(active),
        cpu_hours_per_day=limit("cpu_hours_per_day", 1000.0),
        gpu_hours_per_day=limit("gpu_hours_per_day", 24.0),
        plan_ttl=number("agent", "plan_ttl", 600.0),
        grace=number("agent", "grace", 60.0),
    )


__all__ = ["AGENT_KEYS", "AgentSettings", "read_agent_section"]
