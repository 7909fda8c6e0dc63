"""Who acts on a project: a person or an AI agent, and the tool they used.

An actor is a plain object, stored as it is in the job document (`job.doc["actor"][action]`,
docs/job-document.md) and in the project's log of write actions (`.aexp/actions.jsonl`):

    {"kind": "person" | "agent",
     "id": "user@host" for a person, the agent's name for an agent ("claude-code"),
     "session_id": the agent's session id, or null,
     "tool": what was used: "aexp new-run", "mcp:create_sweep", "python project.py run", ...,
     "at": when, ISO-8601 UTC,
     "user": the account it ran under, user@host (an agent acts for someone too)}

An agent is recognised by its session id in the environment variable `[agent] session_env` of
signac.rc (Claude Code exports `CLAUDE_CODE_SESSION_ID` to the commands and MCP servers it
starts). A process that launches others hands its actor down in AEXP_ACTOR (JSON): the SLURM
job `submit` sends, or `project.py run` started by the MCP server, then records who launched
it and with which tool, not the process's own guess.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from aexp.envstamp import env_stamp
from aexp.errors import SettingsError
from aexp.jobdoc import now_iso
from aexp.settings import cached_settings

ACTOR_ENV = "AEXP_ACTOR"  # the actor a launcher hands to the processes it starts (JSON)
DEFAULT_SESSION_ENV = "CLAUDE_CODE_SESSION_ID"
KINDS = ("person", "agent")
# The name an agent gets from the variable that holds its session id.
AGENT_NAMES = {"CLAUDE_CODE_SESSION_ID": "claude-code"}
ACTIONS = ("create", "launch", "rerun", "rearm")  # the actions recorded in a job document
ACTOR_PREFIX = "aexp.actor."  # the run config keys that name who started the run
_FIELDS = ("kind", "id", "session_id", "tool", "user")


_LOGIN_ENV = ("LOGNAME", "USER", "LNAME")  # where the login name is looked for, in order
_GETPASS_ENV = (*_LOGIN_ENV, "USERNAME")  # and where getpass looks too, after them
_person: tuple[Any, str] = (None, "")  # person_id's last answer, with what it was derived from


def person_id() -> str:
    """user@host of this process (the login name as the environment gives it, as getpass does).

    Derived again only when what it depends on changed: the login variables, the uid, the host
    name (each attempt of a sweep records it; the passwd lookup alone costs ~6 us)."""
    global _person
    key = (env_stamp(_GETPASS_ENV), os.getuid(), os.uname().nodename)
    if _person[0] == key:
        return _person[1]
    user = next((os.environ[k] for k in _LOGIN_ENV if os.environ.get(k)), None)
    if user is None:
        import getpass

        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # an uid without a passwd entry (some containers)
            user = str(os.getuid())
    found = f"{user}@{key[2]}"
    _person = (key, found)
    return found


def session_env_of(root: str | os.PathLike | None) -> str:
    """`[agent] session_env` of the project at `root` (the default without a project or with an
    unreadable signac.rc: the actor is recorded, never the reason a write fails)."""
    if root is None:
        return os.environ.get("AEXP_SESSION_ENV") or DEFAULT_SESSION_ENV
    try:
        return cached_settings(root).agent.session_env
    except SettingsError:
        return DEFAULT_SESSION_ENV


# current_actor's answers without their time, by (tool, root, agent), with the inputs they were
# derived from: a sweep asks once per attempt, with nothing changed between two attempts.
_actors: dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, Any]]] = {}


def current_actor(
    tool: str, *, root: str | os.PathLike | None = None, agent: str | None = None
) -> dict[str, Any]:
    """The actor of what this process does now with `tool`.

    A launcher's actor handed down in AEXP_ACTOR wins (its `tool` included). Else an agent when
    `agent` names one (the MCP server passes its client's name) or when the project's session
    variable (`session_env_of(root)`) is set, else a person. Derived again only when one of
    those inputs changed (the environment's values, the project's settings, the user); `at` is
    always now.
    """
    handed_text = env_stamp((ACTOR_ENV,))
    env = session_env_of(root)
    where = (tool, root, agent)
    inputs = (handed_text, env, env_stamp((env,)), person_id())
    cached = _actors.get(where)
    if cached is None or cached[0] != inputs:
        cached = _actors[where] = (inputs, _derive_actor(tool, env, agent))
    return {**cached[1], "at": now_iso()}


def _derive_actor(tool: str, env: str, agent: str | None) -> dict[str, Any]:
    # `at` is a placeholder: current_actor sets it, keeping its place among the keys.
    handed = handed_actor()
    if handed is not None:
        return {**handed, "at": None}
    session = os.environ.get(env) or None
    user = person_id()
    if agent or session:
        name = agent or AGENT_NAMES.get(env, env.lower())
        return {
            "kind": "agent",
            "id": name,
            "session_id": session,
            "tool": tool,
            "at": None,
            "user": user,
        }
    return {
        "kind": "person",
        "id": user,
        "session_id": None,
        "tool": tool,
        "at": None,
        "user": user,
    }


def workflow_actor(root: str | os.PathLike | None) -> dict[str, Any]:
    """The actor of a workflow step in this process (binding a run, starting an attempt): the
    launcher's when it handed one down, else `python project.py run` here, or `python project.py
    submit` inside a SLURM job."""
    in_slurm = env_stamp(("SLURM_JOB_ID",))[0]
    tool = "python project.py submit" if in_slurm else "python project.py run"
    return current_actor(tool, root=root)


def handed_actor() -> dict[str, Any] | None:
    """The actor in AEXP_ACTOR, or None when it is unset or not an actor (then ignored)."""
    text = os.environ.get(ACTOR_ENV)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("kind") not in KINDS:
        return None
    if not all(isinstance(value.get(k), str) for k in ("id", "tool")):
        return None
    return {k: value.get(k) for k in _FIELDS}


def hand_down(actor: Mapping[str, Any]) -> dict[str, str]:
    """The environment that makes processes started now record `actor` (AEXP_ACTOR)."""
    return {ACTOR_ENV: json.dumps({k: actor.get(k) for k in _FIELDS}, separators=(",", ":"))}


def with_action(doc: Mapping[str, Any], action: str, actor: Mapping[str, Any]) -> dict[str, Any]:
    """The document's `actor` object with `action` recorded as done by `actor` (the other
    actions kept; an `actor` value that is not an object is replaced)."""
    recorded = doc.get("actor")
    recorded = dict(recorded) if isinstance(recorded, Mapping) else {}
    recorded[action] = dict(actor)
    return recorded


def config_of(actor: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run config keys that name an actor (what reaches W&B's config and MLflow's tags):
    `aexp.actor.kind`, `.id`, `.session_id`, `.tool`, those that are set."""
    if not isinstance(actor, Mapping):
        return {}
    return {
        f"{ACTOR_PREFIX}{key}": actor[key]
        for key in ("kind", "id", "session_id", "tool")
        if isinstance(actor.get(key), str) and actor[key]
    }


__all__ = [
    "ACTIONS",
    "ACTOR_ENV",
    "ACTOR_PREFIX",
    "AGENT_NAMES",
    "DEFAULT_SESSION_ENV",
    "KINDS",
    "config_of",
    "current_actor",
    "hand_down",
    "handed_actor",
    "person_id",
    "session_env_of",
    "with_action",
    "workflow_actor",
]
