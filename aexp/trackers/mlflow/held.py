"""What an MLflow store holds of a run, from the store itself: the answer to "was the replay that
was cut short complete?" (`MlflowAdapter.remote_state`).

The run is found by its `aexp.run_id` tag (the state the last replay returned is only a
shortcut), and compared with the journal point by point: every step of the journal's history that
carries a number is in the run's metric history (`get_metric_history` of each metric: the points
MLflow stored, whatever the progress tag says), every artifact of the journal carries its marker
tag, and a finished last attempt has its end status and exit code. Reading each metric's history
is one request per metric (about a second for 4 metrics x 1,000 steps over HTTP), so it is asked
only when a replay was cut short, never on a normal pass. When the store holds the whole journal
but its progress tag lags behind (the sqlite window described in replay.py), the tag is brought up
to date, so that a later replay (after a new attempt) sends only the new rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aexp.trackers.base import ReplayResult
from aexp.trackers.mlflow import limits
from aexp.trackers.mlflow.client import translated
from aexp.trackers.mlflow.mapping import (
    ARTIFACT_PREFIX,
    EXIT_CODE_TAG,
    PROGRESS_TAG,
    TERMINAL,
    artifact_marker,
    axis,
    end_of,
)
from aexp.trackers.mlflow.uri import run_page

if TYPE_CHECKING:
    from aexp.journal import Journal
    from aexp.trackers.mlflow.client import RunOwner


def held_by_server(
    adapter: RunOwner, journal: Journal, *, job_path: str, state: Mapping[str, Any]
) -> ReplayResult | None:
    """A ReplayResult (nothing sent) whose `complete` says whether the store holds the whole of
    `journal` (module docstring); None for a journal without `init_run` (nothing to compare).
    Raises TrackerInitError when the store cannot be reached."""
    if not journal.init:
        return None
    store = adapter._store()
    experiment_id = store.experiment_id(journal.project, create=False)
    if experiment_id is None:
        return ReplayResult(complete=False)
    known = state.get("mlflow_run_id") if state.get("tracking_uri") == store.shown_uri else None
    run = store.run_for(experiment_id, journal.run_id, known)
    if run is None:
        return ReplayResult(complete=False)
    mlid = run.info.run_id
    history = journal.history()
    steps, _ = axis(history, 0)
    wanted: dict[str, set[int]] = {}
    for row, step in zip(history, steps, strict=True):
        for key, value in row.metrics.items():
            if type(value) in (int, float, bool):
                wanted.setdefault(limits.mlflow_name(key), set()).add(step)
    tags = dict(run.data.tags)
    with translated(f"read the metric history of run {journal.run_id}", store.uri):
        rows_held = all(
            steps_wanted <= {m.step for m in store.client.get_metric_history(mlid, key)}
            for key, steps_wanted in wanted.items()
        )
    status, _, code = end_of(journal)
    ended = status not in TERMINAL or (
        run.info.status == status and (code is None or tags.get(EXIT_CODE_TAG) == code)
    )
    last: dict[str, Any] = {artifact.name: artifact for artifact in journal.artifacts}
    artifacts_held = all(
        tags.get(limits.mlflow_name(ARTIFACT_PREFIX + name)) == artifact_marker(artifact)
        for name, artifact in last.items()
    )
    complete = rows_held and ended and artifacts_held and status in TERMINAL
    if complete and tags.get(PROGRESS_TAG) != str(len(history)):
        with translated(f"record the progress of run {journal.run_id}", store.uri):
            store.client.log_batch(
                mlid, tags=[store.sdk.RunTag(PROGRESS_TAG, str(len(history)))], synchronous=True
            )
    return ReplayResult(
        url=run_page(store.uri, experiment_id, mlid),
        state={
            "mlflow_run_id": mlid,
            "experiment_id": experiment_id,
            "tracking_uri": store.shown_uri,
            "rows": len(history),
            "status": run.info.status,
        },
        complete=complete,
    )


__all__ = ["held_by_server"]
