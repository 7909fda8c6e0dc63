"""Tracker backends and their registry.

Adding a backend: write `aexp/trackers/<name>.py` with a `TrackerAdapter` subclass (SDK imported
lazily), add one line to `ADAPTERS` below, and add tests. See docs/tracker-adapters.md.
"""

from __future__ import annotations

from typing import Any

from aexp.errors import TrackerInitError
from aexp.trackers.base import RunHandle, RunRecord, TrackerAdapter, clean_metrics
from aexp.trackers.mlflow import MlflowAdapter
from aexp.trackers.noop import NoopAdapter
from aexp.trackers.wandb import WandbAdapter

ADAPTERS: dict[str, type[TrackerAdapter]] = {
    "noop": NoopAdapter,
    "wandb": WandbAdapter,
    "mlflow": MlflowAdapter,
}


def get_adapter(name: str, **options: Any) -> TrackerAdapter:
    """Construct the adapter registered as `name` with `options`.

    Raises TrackerInitError for an unknown name (listing the known ones) or a missing SDK.
    """
    try:
        cls = ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise TrackerInitError(
            f"unknown tracker backend {name!r}; known backends: {known}."
        ) from None
    return cls(**options)


__all__ = [
    "ADAPTERS",
    "MlflowAdapter",
    "NoopAdapter",
    "RunHandle",
    "RunRecord",
    "TrackerAdapter",
    "TrackerInitError",
    "WandbAdapter",
    "clean_metrics",
    "get_adapter",
]
