"""A backend's adapter and run handle, rebuilt from a job's stored binding (aexp.binding): what
an attempt's live backends resume, a rerun closes and the sync replays into.

    adapter_for(binding, name)        the adapter, with the options stored at binding time
    handle_for(job, binding, name)    the RunHandle of the run, its config re-derived from the job
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aexp.binding import backend_parts
from aexp.settings import Settings
from aexp.spec import run_spec
from aexp.trackers import ADAPTERS, RunHandle, TrackerAdapter, get_adapter


def adapter_for(
    binding: Mapping[str, Any],
    name: str | None = None,
    *,
    settings: Settings | None = None,
    root: str | os.PathLike | None = None,
) -> TrackerAdapter:
    """Construct the adapter that serves backend `name` (default: the primary) of `binding`,
    with the options stored at binding time (W&B: the entity); with the project's `settings`
    and `root`, as its `from_settings` makes it (MLflow: the tracking URI of signac.rc)."""
    name = name or binding["backend"]
    options = backend_parts(binding).get(name, {}).get("options") or {}
    if settings is None and root is None:
        return get_adapter(name, **options)
    if name not in ADAPTERS:
        get_adapter(name)  # raises the registry's own error, listing the known backends
    return ADAPTERS[name].from_settings(settings, root, **options)


def handle_for(
    job: Any,
    binding: Mapping[str, Any],
    name: str | None = None,
    *,
    spec: Mapping[str, Any] | None = None,
) -> RunHandle:
    """A RunHandle of backend `name` (default: the primary) rebuilt from a stored binding.

    `extra` holds the backend's stored state, the run's tags, notes and offline flag, and the
    run's config under `_config` (re-derived from the job rather than stored: signac forbids
    dots in document keys, and configs are full of them). `spec`: the run's spec when the
    caller has it (`aexp.spec.run_spec`).
    """
    name = name or binding["backend"]
    part = backend_parts(binding).get(name, {})
    if spec is None:
        spec = run_spec(job)
    extra = part.get("extra") or {}
    return RunHandle(
        # A backend that chose its own run id at the first attempt keeps it (extra["id"]).
        id=str(extra.get("id") or binding["run_id"]),
        url=part.get("url"),
        project=binding.get("project", ""),
        group=binding.get("group", ""),
        extra={
            "tags": list(binding.get("tags") or spec["tags"]),
            "notes": binding.get("notes"),
            "offline": bool(binding.get("offline")),
            **extra,
            "_config": spec["config"],
        },
    )


__all__ = ["adapter_for", "handle_for"]
