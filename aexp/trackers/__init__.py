"""Tracker backends and their registry.

Adding a backend: write `aexp/trackers/<name>.py` with a `TrackerAdapter` subclass (SDK imported
lazily), add one line to `ADAPTERS` below, and add tests. See docs/tracker-adapters.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from aexp.errors import TrackerInitError
from aexp.lazy import lazy_names
from aexp.trackers.base import RunHandle, RunRecord, TrackerAdapter, clean_metrics

if TYPE_CHECKING:
    from aexp.trackers.mlflow import MlflowAdapter
    from aexp.trackers.noop import NoopAdapter
    from aexp.trackers.wandb import WandbAdapter


class _Registry(MutableMapping[str, type[TrackerAdapter]]):
    """Backend name -> adapter class, each adapter's module imported on the first lookup of its
    name: `name in ADAPTERS` and listing the names import nothing (project.py's start-up checks
    the configured backend; only the backends a job uses are loaded, ~30 ms for all three)."""

    def __init__(self, where: dict[str, str]) -> None:
        self._where = dict(where)  # name -> "module:Class"
        self._loaded: dict[str, type[TrackerAdapter]] = {}

    def __getitem__(self, name: str) -> type[TrackerAdapter]:
        cls = self._loaded.get(name)
        if cls is None:
            module, _, attr = self._where[name].partition(":")  # KeyError: not registered
            cls = self._loaded[name] = getattr(importlib.import_module(module), attr)
        return cls

    def __setitem__(self, name: str, cls: type[TrackerAdapter]) -> None:
        self._where[name] = f"{cls.__module__}:{cls.__qualname__}"
        self._loaded[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._where[name]
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


ADAPTERS: MutableMapping[str, type[TrackerAdapter]] = _Registry(
    {
        "noop": "aexp.trackers.noop:NoopAdapter",
        "wandb": "aexp.trackers.wandb:WandbAdapter",
        "mlflow": "aexp.trackers.mlflow:MlflowAdapter",
    }
)
_CLASSES = {
    "MlflowAdapter": "aexp.trackers.mlflow",
    "NoopAdapter": "aexp.trackers.noop",
    "WandbAdapter": "aexp.trackers.wandb",
}


# The adapter classes, imported on first use.
__getattr__, _ = lazy_names(globals(), _CLASSES)


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
