"""The MLflow SDK as aexp uses it: imported on first use, its errors turned into aexp's.

`import_sdk` is the only place `mlflow` is imported (~1.6-3 s), and only when a client is needed:
importing aexp, binding a job, `check_run` and `status` never pay for it. Everything goes through
`mlflow.tracking.MlflowClient(tracking_uri=...)`, never the fluent API: no global tracking URI,
no active-run stack, nothing that leaks into the user's own MLflow use in the same process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aexp.errors import AexpError, TrackerInitError, TrackerUsageError
from aexp.trackers.mlflow.creation import creation_lock, store_problem
from aexp.trackers.mlflow.mapping import RUN_ID_TAG
from aexp.trackers.mlflow.uri import check_reachable, default_artifact_location, redact, sqlite_path

INSTALL_HINT = "install it with: pip install 'agentic-experiments[mlflow]'"


def sdk_installed() -> bool:
    """Whether `import mlflow` can work, decided without importing it (a few ms).

    False also when the import system hides it (`sys.modules["mlflow"] = None`).
    """
    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):
        return False


def missing_sdk() -> TrackerInitError:
    return TrackerInitError(f"the mlflow backend needs the mlflow package; {INSTALL_HINT}.")


class RunOwner(Protocol):
    """What the replay and the server's account need of the adapter (MlflowAdapter is one): its
    store, opened on first use, and its check of what MLflow would refuse."""

    def _store(self) -> Store: ...

    def check_run(
        self, *, project: str, group: str, tags: Sequence[str], config: Mapping[str, Any]
    ) -> None: ...


@dataclass(frozen=True)
class Sdk:
    """The parts of MLflow aexp uses."""

    MlflowClient: Any
    Metric: Any
    Param: Any
    RunTag: Any
    MlflowException: Any


_sdk: Sdk | None = None


def import_sdk() -> Sdk:
    """Import MLflow (once per process). Raises TrackerInitError with the install hint."""
    global _sdk
    if _sdk is None:
        # Printing each run's URL at set_terminated (MLflow's default for tracking servers) would
        # put two lines per run into a sync's output; the URL is in the job document instead.
        # setdefault: a user who set it keeps their choice.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        try:
            from mlflow.entities import Metric, Param, RunTag
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise missing_sdk() from None
        _sdk = Sdk(MlflowClient, Metric, Param, RunTag, MlflowException)
    return _sdk


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


@contextlib.contextmanager
def translated(doing: str, uri: str | None = None) -> Iterator[None]:
    """Turn MLflow's (and its HTTP stack's) exceptions into one-sentence aexp errors.

    INVALID_PARAMETER_VALUE (MLflow refused our input) -> TrackerUsageError; a broken or
    read-only store (`uri`) -> TrackerInitError naming the repair (creation.store_problem);
    anything else (server unreachable or failing, database locked, ...) -> TrackerInitError.
    aexp's own errors pass through.
    """
    try:
        yield
    except AexpError:
        raise
    except Exception as exc:
        code = getattr(exc, "error_code", None)
        if code == "INVALID_PARAMETER_VALUE":
            raise TrackerUsageError(f"MLflow could not {doing}: {_first_line(exc)}") from exc
        problem = store_problem(uri, exc) if uri else None
        raise TrackerInitError(problem or f"MLflow could not {doing}: {_first_line(exc)}") from exc


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def write_lock(uri: str) -> contextlib.AbstractContextManager[Any]:
    """A lock serialising this process's replays into one sqlite file (threads of one sync
    writing one database at once only earn "database is locked"); no lock for other stores."""
    path = sqlite_path(uri)
    if path is None:
        return contextlib.nullcontext()
    with _locks_guard:
        return _locks.setdefault(str(path), threading.Lock())


def is_missing(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


class Store:
    """One tracking URI as this process uses it: a client, and the experiment ids it looked up.

    Thread-safe as MlflowClient is (one SQLAlchemy session or HTTP request per call).
    Raises TrackerInitError when the SDK is missing or a tracking server does not answer.
    """

    def __init__(
        self, uri: str, artifact_location: str | None = None, *, timeout: float | None = None
    ) -> None:
        self.uri = uri
        self.shown_uri = redact(uri)
        self.sdk = import_sdk()
        check_reachable(uri, timeout=min(10.0, timeout or 10.0))
        self.artifact_location = artifact_location or default_artifact_location(uri)
        # A sqlite store is created or migrated by its first use: once, under a lock every
        # aexp process takes (creation.py), never by two processes at once.
        with creation_lock(uri), translated(f"open the tracking store {self.shown_uri}", uri):
            self.client = self.sdk.MlflowClient(tracking_uri=uri)
            if sqlite_path(uri) is not None:
                self.client.search_experiments(max_results=1)
        self._experiments: dict[str, str] = {}

    def experiment_id(self, name: str, *, create: bool = True) -> str | None:
        """The id of experiment `name`, created when missing (when `create`).

        Two processes creating one experiment at once: the loser's RESOURCE_ALREADY_EXISTS is
        caught and the winner's experiment looked up. A deleted experiment cannot take runs:
        TrackerInitError saying how to restore or purge it.
        """
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        with translated(f"look up experiment {name!r} at {self.shown_uri}", self.uri):
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                if not create:
                    return None
                try:
                    experiment_id = self.client.create_experiment(
                        name, artifact_location=self.artifact_location
                    )
                except self.sdk.MlflowException as exc:
                    if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                        raise
                    experiment = self.client.get_experiment_by_name(name)
                    if experiment is None:
                        raise
                else:
                    self._experiments[name] = experiment_id
                    return experiment_id
        if experiment.lifecycle_stage == "deleted":
            raise TrackerInitError(
                f"MLflow experiment {name!r} at {self.shown_uri} is deleted; restore it "
                f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or "
                "remove it for good (mlflow gc) before logging to it again."
            )
        self._experiments[name] = experiment.experiment_id
        return experiment.experiment_id

    def get_run(self, mlflow_run_id: str) -> Any | None:
        """The run with MLflow id `mlflow_run_id`, or None if it does not exist or is deleted."""
        with translated(f"read run {mlflow_run_id} at {self.shown_uri}", self.uri):
            try:
                run = self.client.get_run(mlflow_run_id)
            except self.sdk.MlflowException as exc:
                if is_missing(exc) or getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE":
                    return None
                raise
        return None if run.info.lifecycle_stage == "deleted" else run

    def find_run(self, experiment_id: str, run_id: str) -> Any | None:
        """The live (not deleted) run tagged `aexp.run_id = run_id`, or None.

        If several exist (two writers raced; aexp's sync claims a run to prevent it), the one
        created first is the run, so every later call picks the same one.
        """
        with translated(f"search run {run_id} at {self.shown_uri}", self.uri):
            runs = self.client.search_runs(
                [experiment_id],
                filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'",
                max_results=50,
            )
        if not runs:
            return None
        return min(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))

    def run_for(
        self, experiment_id: str, run_id: str, mlflow_run_id: str | None = None
    ) -> Any | None:
        """The run of aexp run `run_id`: by its MLflow id when known (one request), checked
        against its tag, else by the tag."""
        if mlflow_run_id:
            run = self.get_run(mlflow_run_id)
            if run is not None and run.data.tags.get(RUN_ID_TAG) == run_id:
                return run
        return self.find_run(experiment_id, run_id)


_stores: dict[tuple[str, str | None], Store] = {}
_stores_guard = threading.Lock()


def store_for(
    uri: str, artifact_location: str | None = None, *, timeout: float | None = None
) -> Store:
    """The process's Store for `uri` (made once; the reachability probe runs once). `timeout`:
    the sync's, which bounds the probe."""
    key = (uri, artifact_location)
    with _stores_guard:
        store = _stores.get(key)
    if store is None:
        store = Store(uri, artifact_location, timeout=timeout)
        with _stores_guard:
            store = _stores.setdefault(key, store)
    return store


__all__ = [
    "INSTALL_HINT",
    "Sdk",
    "Store",
    "import_sdk",
    "missing_sdk",
    "sdk_installed",
    "store_for",
    "translated",
    "write_lock",
]
