"""Several backends at once: one sweep through `python project.py run` with `backend = wandb,
mlflow`, a preemption included, then synced to the loopback W&B stand-in (tests/wandb_server.py)
and to a real `mlflow server` on loopback. Both receive the journal's rows; a second sync sends
nothing. The real wandb client (offline) and the real MLflow client; W&B's cloud is the one thing
stood in for (it cannot run here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import NEEDS_WANDB, PYTHON, copy_template, new_runs, preempt_attempt, run_cmd, set_rc
from wandb_server import FakeWandbServer, wandb_env

from aexp.journal import journal_path, read_journal

# Marks, not importorskip: importing wandb in the test session (at collection) makes temporary
# directories in the session's TMPDIR that wandb removes only when the interpreter exits.
pytestmark = [
    *NEEDS_WANDB,
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("mlflow") is None, reason="needs mlflow"
    ),
]

STEP_TIMEOUT = 180


def _doc(root: Path, job_id: str) -> dict:
    return json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())


def _preempt_first_attempt(root: Path, env: dict[str, str], job_id: str) -> None:
    """One attempt of the job, stopped by SIGTERM after it logged a few rows (checkpointed)."""
    preempt_attempt(root, env, job_id, 2, ("run", "-o", "run_job", "-j"), STEP_TIMEOUT)


def _mlflow_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("multi").experiment_id],
        filter_string=f"tags.`aexp.run_id` = '{run_id}'",
    )
    points = client.get_metric_history(run.info.run_id, key)
    return sorted((p.step, p.value) for p in points)


def test_a_sweep_mirrored_to_wandb_and_mlflow_reaches_both_equal_to_its_journal(
    tmp_path: Path, server
) -> None:
    root = copy_template(tmp_path / "project")
    set_rc(root, "tracker", "backend", "wandb, mlflow")
    set_rc(root, "tracker", "project", "multi")
    set_rc(root, "mlflow", "tracking_uri", server.uri)
    env = dict(os.environ)
    jobs = new_runs(
        root, env, "condition=full|ablated,seed=0,epochs=6,epoch_seconds=0.05", STEP_TIMEOUT
    )
    _preempt_first_attempt(root, env, jobs[0])
    assert _doc(root, jobs[0])["tracker"]["state"] == "preempted"

    # The compute-node side: no credentials, no network; the pass ends with every job finished.
    ran = run_cmd([PYTHON, "project.py", "run", "-o", "run_job"], root, env, STEP_TIMEOUT)
    assert ran.returncode == 0, ran.stderr
    # The advice names what each backend needs from the host that syncs, nothing else.
    advice = ran.stdout.splitlines()[-1]
    assert (
        "2 runs to upload: aexp sync-offline from a login node with W&B credentials (wandb "
        "login) and the mlflow package and its tracking store in reach ([mlflow] "
        "tracking_uri);" in advice
    ), advice
    for job_id in jobs:
        binding = _doc(root, job_id)["tracker"]
        assert binding["state"] == "finished"
        assert list(binding["backends"]) == ["wandb", "mlflow"]
        assert binding["backend"] == "wandb" and binding["synced_at"] is None
    assert _doc(root, jobs[0])["tracker"]["attempts"] == 2

    with FakeWandbServer() as wandb_server:
        sync_env = wandb_env(tmp_path / "sync", wandb_server.base_url)
        # The tracking URI comes from signac.rc's [mlflow] tracking_uri.
        assert "MLFLOW_TRACKING_URI" not in sync_env
        first = run_cmd([PYTHON, "-m", "aexp.cli", "sync-offline"], root, sync_env, STEP_TIMEOUT)
        assert first.returncode == 0, first.stdout + first.stderr
        received = wandb_server.runs()
        for job_id in jobs:
            binding = _doc(root, job_id)["tracker"]
            journal = read_journal(journal_path(root / "workspace" / job_id, binding["run_id"]))
            rows = [(row.step, row.metrics["loss"]) for row in journal.history()]
            assert [step for step, _ in rows] == list(range(6)), "one continuous step axis"
            # W&B: every journal row once, in order, at its step.
            got = [(r["_step"], r["loss"]) for r in received[binding["run_id"]]["history"]]
            assert got == rows
            # MLflow: the same rows.
            assert _mlflow_history(server.uri, binding["run_id"], "loss") == rows
            parts = binding["backends"]
            assert parts["wandb"]["synced_at"] and parts["mlflow"]["synced_at"]
            assert binding["synced_at"]

        # A second sync sends nothing to either backend.
        uploads = len(wandb_server.requests)
        mlflow_before = {
            job_id: _mlflow_history(server.uri, _doc(root, job_id)["tracker"]["run_id"], "loss")
            for job_id in jobs
        }
        again = run_cmd([PYTHON, "-m", "aexp.cli", "sync-offline"], root, sync_env, STEP_TIMEOUT)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(wandb_server.requests) == uploads
        for job_id in jobs:
            run_id = _doc(root, job_id)["tracker"]["run_id"]
            assert _mlflow_history(server.uri, run_id, "loss") == mlflow_before[job_id]


@pytest.mark.parametrize(
    ("backends", "needs"),
    [
        (("mlflow",), "the mlflow package and its tracking store in reach ([mlflow] tracking_uri)"),
        (("wandb",), "W&B credentials (wandb login)"),
        (("otel", "noop"), "its OTLP endpoint in reach ([otel] endpoint)"),
        (("noop",), ""),
        (("mlflow", "wandb"), "the mlflow package and its tracking store in reach ([mlflow] "
         "tracking_uri) and W&B credentials (wandb login)"),
    ],
)  # fmt: skip
def test_the_pass_advice_names_what_the_projects_backends_need(backends, needs) -> None:
    from aexp.workflow.report import sync_needs

    assert sync_needs(backends) == needs
