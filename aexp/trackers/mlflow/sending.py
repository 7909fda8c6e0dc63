"""The writes both the live adapter and the replay send to an MLflow run: the run-id check and
the batched `log_batch` and artifact calls, kept within MLflow's request limits (limits.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aexp.errors import TrackerUsageError
from aexp.trackers.mlflow import limits
from aexp.trackers.mlflow.client import Store


def check_run_id(run_id: str) -> None:
    # Run ids are quoted into search filters; MLflow's filter grammar has no escape for quotes.
    if not run_id or not all(c.isalnum() or c in "_.-" for c in run_id) or len(run_id) > 200:
        raise TrackerUsageError(
            f"run id {run_id!r} cannot name an MLflow run; use letters, digits, '_', '.', '-'."
        )


def send_params(store: Store, mlid: str, params: Mapping[str, str], held: Mapping[str, str]) -> int:
    """Log the params the run does not hold yet, in batches of 100 (MLflow's limit per request).
    Returns how many were sent. Re-sending a held value is harmless; a different one is refused
    by MLflow (params never change), which `translated` reports."""
    missing = [store.sdk.Param(k, v) for k, v in params.items() if held.get(k) != v]
    for start in range(0, len(missing), limits.MAX_PARAMS_PER_BATCH):
        chunk = missing[start : start + limits.MAX_PARAMS_PER_BATCH]
        store.client.log_batch(mlid, params=chunk, synchronous=True)
    return len(missing)


def send_entries(client: Any, mlid: str, metrics: list[Any], tags: list[Any]) -> None:
    """Send metrics and tags in as few `log_batch` requests as MLflow's limits allow (1,000
    entities, 100 tags per request). Nothing is sent when both are empty."""
    while metrics or tags:
        tag_chunk, tags = tags[: limits.MAX_TAGS_PER_BATCH], tags[limits.MAX_TAGS_PER_BATCH :]
        room = limits.MAX_ENTITIES_PER_BATCH - len(tag_chunk)
        chunk, metrics = metrics[:room], metrics[room:]
        client.log_batch(mlid, metrics=chunk, tags=tag_chunk, synchronous=True)


def upload(client: Any, mlid: str, name: str, path: Path) -> None:
    """Upload a file (to `<name>/<file name>`) or a directory's contents (to `<name>/...`)."""
    if path.is_dir():
        client.log_artifacts(mlid, str(path), artifact_path=name)
    else:
        client.log_artifact(mlid, str(path), artifact_path=name)


__all__ = ["check_run_id", "send_entries", "send_params", "upload"]
