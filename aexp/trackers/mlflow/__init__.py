"""The MLflow backend: fed by replaying each run's journal from a login node, usable live too.

Importing this package never imports mlflow (it is imported on first use of a client).

    adapter.py   MlflowAdapter: the contract (init_run, resume_run, log, log_artifact, finish,
                 list_runs, run_url, check_run, replay)
    replay.py    the journal -> MLflow replay: idempotent and resumable after a kill
    mapping.py   how a run maps to MLflow: tags, values, statuses
    limits.py    what MLflow 3.17 accepts (names, lengths, batch sizes), checked without it
    uri.py       the tracking URI: precedence, sqlite paths, run pages, reachability
    client.py    the SDK: lazy import, error translation, experiments and runs looked up
"""

from __future__ import annotations

from aexp.trackers.mlflow.adapter import MlflowAdapter
from aexp.trackers.mlflow.client import INSTALL_HINT
from aexp.trackers.mlflow.uri import resolve_tracking_uri

__all__ = ["INSTALL_HINT", "MlflowAdapter", "resolve_tracking_uri"]
