"""The tracker adapter contract: what every backend (noop, wandb, ...) implements.

An adapter turns a signac job into a run of some tracking backend and never owns canonical state:
the job document does (see docs/job-document.md). Operations of one run happen in different
processes, often on different machines, so a run is identified by plain data (`RunHandle`'s
JSON-serialisable fields) and `resume_run` re-opens it anywhere from that data.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aexp.errors import TrackerInitError, TrackerUsageError

__all__ = [
    "RunHandle",
    "RunRecord",
    "TrackerAdapter",
    "TrackerInitError",
    "TrackerUsageError",
    "clean_metrics",
]


@dataclass
class RunHandle:
    """One tracker run as seen by this process.

    `extra` holds backend state. Keys starting with "_" are live, process-local objects (an open
    SDK run, an open file) and are never persisted; every other key must be JSON-serialisable,
    because the binding stores it so another process can resume the run.
    """

    id: str
    url: str | None = None
    project: str = ""
    group: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def persistent_extra(self) -> dict[str, Any]:
        """The part of `extra` that survives the process (stored in the binding)."""
        return {k: v for k, v in self.extra.items() if not k.startswith("_")}


@dataclass
class RunRecord:
    """A run as a backend lists it (see `TrackerAdapter.list_runs`)."""

    id: str
    project: str
    group: str
    state: str  # "bound" | "running" | "finished" | "failed" | "preempted" | "unknown"
    url: str | None = None
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    last_metrics: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    path: str | None = None


class TrackerAdapter(ABC):
    """Contract between aexp and one tracking backend.

    Subclasses set `name` (the registry key), import their SDK lazily (in `__init__` or the
    methods, never at module import) and raise `TrackerInitError` when it is missing.
    """

    name: ClassVar[str]

    @abstractmethod
    def init_run(
        self,
        *,
        project: str,
        group: str,
        tags: list[str],
        config: Mapping[str, Any],
        notes: str | None,
        offline: bool,
        workdir: str | Path | None = None,
    ) -> RunHandle:
        """Create a new run and return its handle; `workdir` is the job's workspace directory.

        Backends may defer creating local files until the run is first resumed (W&B does: binding
        alone leaves no offline folder).
        """

    @abstractmethod
    def resume_run(
        self, handle: RunHandle, *, workdir: str | Path | None = None, attempt: int = 1
    ) -> RunHandle:
        """Re-open the run `handle.id` in this process so that `log`/`finish` work on it.

        `handle` may come from another process (rebuilt from the binding). The run id never
        changes. `attempt` counts execution attempts of the run, starting at 1.
        """

    @abstractmethod
    def log(
        self, handle: RunHandle, metrics: Mapping[str, Any], *, step: int | None = None
    ) -> None:
        """Record one row of metrics, at `step` when given (steps only increase)."""

    @abstractmethod
    def log_artifact(self, handle: RunHandle, name: str, path: str | Path) -> None:
        """Attach the file (or directory) at `path` to the run under `name`."""

    @abstractmethod
    def finish(self, handle: RunHandle, *, exit_code: int = 0, preempted: bool = False) -> None:
        """Close the run in this process with `exit_code`; `preempted` marks a signalled end."""

    def last_step(self, handle: RunHandle, *, workdir: str | Path | None = None) -> int | None:
        """The highest step this run ever recorded, even by a process that was killed.

        Optional (default None): the caller then continues from the step it last saved itself.
        Backends that can answer let a resumed attempt continue the step axis exactly.
        """
        return None

    @abstractmethod
    def list_runs(self, *, project: str, group_prefix: str = "") -> list[RunRecord]:
        """Runs of `project` whose group starts with `group_prefix`."""


_PLAIN_TYPES = frozenset({int, float, str, bool, type(None)})


def clean_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one row of metrics and convert it to plain JSON-compatible values.

    Keys must be non-empty strings. numpy scalars and 0-d arrays become Python numbers (anything
    with `.item()`); NaN and +/-inf are kept as floats (W&B accepts them; the JSONL log writes
    them as the JSON extensions NaN/Infinity, which Python's json reads back). Anything else that
    is not a number, string, bool or None raises TrackerUsageError naming the key.

    A plain dict that needs no conversion is returned as is (not copied): logging sits on the
    hot path of every training step. Copy it before mutating.
    """
    if type(metrics) is dict:
        for key, value in metrics.items():
            if type(key) is not str or not key or type(value) not in _PLAIN_TYPES:
                break
        else:
            return metrics
    if not isinstance(metrics, Mapping):
        raise TrackerUsageError(f"metrics must be a mapping of names to values, not {metrics!r}.")
    row: dict[str, Any] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key:
            raise TrackerUsageError(f"metric names must be non-empty strings, not {key!r}.")
        if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if value is None or isinstance(value, str | bool):
            row[key] = value
        elif isinstance(value, numbers.Integral):
            row[key] = int(value)
        elif isinstance(value, numbers.Real):
            row[key] = float(value)
        else:
            raise TrackerUsageError(
                f"metric {key!r} has a value of type {type(value).__name__}, which cannot be "
                "recorded; log numbers, strings, booleans or None."
            )
    return row
