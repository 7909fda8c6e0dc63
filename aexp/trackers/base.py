"""The tracker adapter contract: what every backend (noop, wandb, ...) implements.

An adapter turns a signac job into a run of some tracking backend and never owns canonical state:
the job document does (see docs/job-document.md). Operations of one run happen in different
processes, often on different machines, so a run is identified by plain data (`RunHandle`'s
JSON-serialisable fields) and `resume_run` re-opens it anywhere from that data.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from aexp.errors import TrackerInitError, TrackerUsageError

if TYPE_CHECKING:
    import os

    from aexp.journal import Journal
    from aexp.settings import Settings

__all__ = [
    "ReplayResult",
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

    Five methods make an adapter (the recipe users know): `init_run`, `log`, `log_artifact`,
    `finish` and `list_runs`. `init_run` creates the run and opens it in this process; the
    other methods take the handle it returns. Everything else has a default:

    - `resume_run` re-opens a run from a handle rebuilt in another process (default: the handle
      as it is, which serves backends whose handle is plain data, e.g. a REST API keyed by id);
    - `run_url` says the run's web page before the run exists (default: None);
    - `check_run` refuses, before anything is written, what the backend would refuse later;
    - `feed` says how the workflow feeds the backend: "live" (called during each execution
      attempt, like W&B), "replay" (never called on the compute node; `replay` feeds it the
      run's journal at sync time, like MLflow, `remote_state` says what it holds when a replay
      was cut short), or "journal" (the backend is the journal itself: the noop backend);
    - `sync_blocker` says why this host cannot sync to the backend.

    Subclasses set `name` (the registry key), import their SDK lazily (in `__init__` or the
    methods, never at module import) and raise `TrackerInitError` when it is missing.
    """

    name: ClassVar[str]
    feed: ClassVar[str] = "live"

    @abstractmethod
    def init_run(
        self,
        *,
        project: str,
        group: str,
        tags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        notes: str | None = None,
        offline: bool = False,
        workdir: str | Path | None = None,
        run_id: str | None = None,
    ) -> RunHandle:
        """Create a run, open it in this process and return its handle.

        `offline` asks for a run written locally and uploaded later; `workdir` is the directory
        the backend keeps its local files in (the job's workspace in the workflow); `run_id`
        asks for that id (the workflow gives one id to every backend of a run), else the
        backend chooses. Raises TrackerInitError when the backend refuses.
        """

    def resume_run(
        self, handle: RunHandle, *, workdir: str | Path | None = None, attempt: int = 1
    ) -> RunHandle:
        """Re-open the run `handle.id` in this process so that `log`/`finish` work on it.

        `handle` may come from another process (rebuilt from the job document). The run id never
        changes. `attempt` counts execution attempts of the run, from 1. The default returns
        `handle` unchanged.
        """
        return handle

    def repair(
        self, handle: RunHandle, journal: Journal, *, workdir: str | Path | None = None
    ) -> int:
        """Write into the backend what `journal` holds and the backend's own copy lost.

        Called before an execution attempt re-opens a run whose previous attempt did not end
        cleanly (killed), and before a sync. Returns the number of rows written. The default
        (a backend that loses nothing) does nothing.
        """
        return 0

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

    @abstractmethod
    def list_runs(self, *, project: str, group_prefix: str = "") -> list[RunRecord]:
        """Runs of `project` whose group starts with `group_prefix`."""

    def run_url(self, *, project: str, run_id: str, offline: bool) -> str | None:
        """The run's web page, when it can be known before the run exists (default None)."""
        return None

    @classmethod
    def from_settings(
        cls, settings: Settings | None, root: str | os.PathLike | None, **options: Any
    ) -> TrackerAdapter:
        """The adapter for the project at `root` configured by `settings` (its signac.rc), with
        `options` stored in a run's binding winning (see `options`). Default: `cls(**options)`.
        """
        return cls(**options)

    def options(self) -> dict[str, Any]:
        """The constructor arguments (JSON) that rebuild this adapter in another process; stored
        in the binding (W&B: the entity). Default: none."""
        return {}

    @classmethod
    def check_run(
        cls, *, project: str, group: str, tags: Sequence[str], config: Mapping[str, Any]
    ) -> None:
        """Raise TrackerUsageError (one sentence naming the value and the rule) for anything of
        this run the backend would refuse later. Called before anything is written."""
        return None

    def remote_state(
        self, journal: Journal, *, job_path: str, state: Mapping[str, Any]
    ) -> ReplayResult | None:
        """The backend's own account of the run of `journal` (backends fed by "replay").

        Asked by the sync before it replays a run whose last replay was cut short (its
        in-flight record is still in the job document): a ReplayResult with `complete=True`
        (its `url` and `state` too) when the backend already holds the whole journal, and the
        sync records the run synced without sending anything; `complete=False`, or None when
        the backend cannot tell (the default), and the sync replays, which is then idempotent.
        Raises TrackerInitError when the backend cannot be reached.
        """
        return None

    @classmethod
    def sync_blocker(cls) -> str | None:
        """Why runs cannot be synced to this backend from this host, in one sentence (its SDK
        is missing, it has no credentials here), or None. Asked once per sync pass, before any
        run is attempted; never contacts a server. Default: None."""
        return None

    def replay(self, journal: Journal, *, job_path: str, state: Mapping[str, Any]) -> ReplayResult:
        """Bring the backend's copy of the run up to `journal` (backends fed by "replay").

        Idempotent: what the backend already holds is not sent again, and an interrupted
        replay completes on the next call. `state` is what the last replay returned (stored in
        the job document). Raises TrackerInitError when the backend cannot be reached.
        """
        raise NotImplementedError(f"the {self.name} backend is not fed by replay")


@dataclass
class ReplayResult:
    """What one replay sent and where the run now lives in the backend."""

    url: str | None = None
    rows: int = 0  # rows sent by this replay (0: the backend was up to date)
    artifacts: int = 0  # artifacts sent by this replay
    state: dict[str, Any] = field(default_factory=dict)  # kept for the next replay (JSON)
    complete: bool = False  # the backend holds the whole run, final state included
    unit: str = "row"  # what `rows` counts, as the sync reports it (OpenTelemetry: "span")


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
