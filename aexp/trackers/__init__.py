"""Tracker backends and their registry.

Adding a backend to aexp: write `aexp/trackers/<name>.py` with a `TrackerAdapter` subclass (SDK
imported lazily), add one line to `BUILTIN` in aexp/trackers/names.py, and add tests. A backend
of your own needs no edit of aexp: name its class in signac.rc by its dotted path
(`backend = mypkg.trackers:MyAdapter`) or declare an entry point of the group `aexp.trackers`.
See docs/tracker-adapters.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aexp.errors import TrackerInitError
from aexp.lazy import lazy_names
from aexp.trackers.base import RunHandle, RunRecord, TrackerAdapter, clean_metrics
from aexp.trackers.registry import ADAPTERS, get_adapter, recreatable

if TYPE_CHECKING:
    from aexp.trackers.mlflow import MlflowAdapter
    from aexp.trackers.noop import NoopAdapter
    from aexp.trackers.otel import OtelAdapter
    from aexp.trackers.wandb import WandbAdapter

_CLASSES = {
    "MlflowAdapter": "aexp.trackers.mlflow",
    "NoopAdapter": "aexp.trackers.noop",
    "OtelAdapter": "aexp.trackers.otel",
    "WandbAdapter": "aexp.trackers.wandb",
}


# The adapter classes, imported on first use.
__getattr__, _ = lazy_names(globals(), _CLASSES)


__all__ = [
    "ADAPTERS",
    "MlflowAdapter",
    "NoopAdapter",
    "OtelAdapter",
    "RunHandle",
    "RunRecord",
    "TrackerAdapter",
    "TrackerInitError",
    "WandbAdapter",
    "clean_metrics",
    "get_adapter",
    "recreatable",
]
