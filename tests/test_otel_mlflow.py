"""`backend = mlflow, otel` against a real `mlflow server` on loopback (tests/mlflow_server.py):
each run's trace lands in the MLflow run our replay made, found again through MLflow's own API
(`search_traces(run_id=...)`), with the run's attempts as spans. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import PYTHON, copy_template, preempt_attempt, run_cmd, set_rc

from aexp.trackers.otel import span_id, trace_id

pytest.importorskip("mlflow")
pytest.importorskip("opentelemetry.proto")

STEP_TIMEOUT = 240


def _doc(root: Path, job_id: str) -> dict:
    return json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())


def test_traces_are_linked_to_the_mlflow_run_the_replay_made(tmp_path: Path, server) -> None:
    from mlflow.tracking import MlflowClient

    root = copy_template(tmp_path / "project")
    set_rc(root, "tracker", "backend", "mlflow, otel")
    set_rc(root, "tracker", "project", "otel-in-mlflow")
    set_rc(root, "mlflow", "tracking_uri", server.uri)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    made = run_cmd(
        [
            *(PYTHON, "-m", "aexp.cli", "new-run", "--experiment", "E1", "--hypothesis", "H1"),
            *("--sp", "condition=full|ablated,seed=0,epochs=6,epoch_seconds=0.05"),
        ],
        root,
        env,
        STEP_TIMEOUT,
        check=True,
    )
    jobs = made.stdout.split()
    preempt_attempt(root, env, jobs[0], 2, ("run", "-o", "run_job", "-j"), STEP_TIMEOUT)
    run_cmd([PYTHON, "project.py", "run", "-o", "run_job"], root, env, STEP_TIMEOUT, check=True)
    synced = run_cmd([PYTHON, "-m", "aexp.cli", "sync-offline"], root, env, STEP_TIMEOUT)
    assert synced.returncode == 0, synced.stdout + synced.stderr

    client = MlflowClient(tracking_uri=server.uri)
    experiment = client.get_experiment_by_name("otel-in-mlflow")
    for job, attempts in zip(jobs, (2, 1), strict=True):
        binding = _doc(root, job)["tracker"]
        run_id = binding["run_id"]
        (run,) = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`aexp.run_id` = '{run_id}'"
        )
        traces = client.search_traces(locations=[experiment.experiment_id], run_id=run.info.run_id)
        assert [t.info.trace_id for t in traces] == [f"tr-{trace_id(run_id)}"]
        spans = {span.span_id: span for span in traces[0].data.spans}
        assert set(spans) == {span_id(run_id, n) for n in range(attempts + 1)}
        root_span = spans[span_id(run_id, 0)]
        assert root_span.parent_id is None
        assert root_span.attributes["aexp.run.attempts"] == attempts
        assert all(
            spans[span_id(run_id, n)].parent_id == root_span.span_id for n in range(1, attempts + 1)
        )
        part = binding["backends"]["otel"]
        assert part["synced_at"] and part["state"]["target"].endswith(f"&run={run.info.run_id}")
        assert part["url"].endswith(f"/runs/{run.info.run_id}")
    first_attempt = client.get_trace(f"tr-{trace_id(_doc(root, jobs[0])['tracker']['run_id'])}")
    names = [event.name for span in first_attempt.data.spans for event in span.events]
    assert "aexp.preempted" in names and "aexp.resume" in names

    # A second sync sends nothing more to the server.
    posts = server.requests("/v1/traces")
    again = run_cmd([PYTHON, "-m", "aexp.cli", "sync-offline"], root, env, STEP_TIMEOUT)
    assert again.returncode == 0, again.stdout + again.stderr
    assert server.requests("/v1/traces") == posts == 2
