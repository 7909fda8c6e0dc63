"""What a run's trace says about its run beyond the journal: the OTLP resource (docs/otel.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aexp.journal import Journal


@dataclass
class RunContext:
    """What a trace says about its run beyond the journal: from the job and the settings."""

    job_id: str
    service_name: str = "aexp"
    limina: Mapping[str, Any] = field(default_factory=dict)  # experiment_id, hypothesis_id
    actor: Mapping[str, Any] | None = None  # who launched the run (see actor_attributes)
    url: str | None = None  # the run's page in its primary backend
    backends: list[str] = field(default_factory=list)
    previous_run_id: str | None = None  # the run a rerun replaced: linked from the run span
    version: str = ""  # aexp's version (the instrumentation scope)


def actor_attributes(actor: Mapping[str, Any] | None) -> dict[str, Any]:
    """Resource attributes of the actor that launched the run, as the job document records it.

    Reads `job.doc["actor"]`: an object with `kind` ("person" or "agent"), `id` (user@host, or
    the agent's id), `session_id` (the agent session, e.g. Claude Code's), `tool`; when it has
    a `launch` (or `launched`) object, that one (the launch of the run) is read instead. The
    session becomes `session.id` (OpenTelemetry's attribute, the one Claude Code's own telemetry
    carries), the rest `aexp.actor.*`. Nothing recorded: no attributes.
    """
    if not isinstance(actor, Mapping):
        return {}
    for key in ("launch", "launched"):
        if isinstance(actor.get(key), Mapping):
            actor = actor[key]
            break
    out: dict[str, Any] = {}
    for key in ("kind", "id", "tool"):
        if isinstance(actor.get(key), str) and actor[key]:
            out[f"aexp.actor.{key}"] = actor[key]
    session = actor.get("session_id") or actor.get("session")
    if isinstance(session, str) and session:
        out["session.id"] = session
    return out


def resource_attributes(journal: Journal, context: RunContext) -> dict[str, Any]:
    """The attributes every span of the run shares (the OTLP resource)."""
    config = journal.config
    limina = context.limina or {}
    return {
        "service.name": context.service_name,
        "aexp.project": journal.project,
        "aexp.job.id": context.job_id,
        "aexp.run.id": journal.run_id,
        "limina.hypothesis_id": limina.get("hypothesis_id") or config.get("limina.hypothesis_id"),
        "limina.experiment_id": limina.get("experiment_id") or config.get("limina.experiment_id"),
        **actor_attributes(context.actor),
    }


__all__ = ["RunContext", "actor_attributes", "resource_attributes"]
