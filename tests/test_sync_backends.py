"""A run with several backends (`[tracker] backend = wandb, mlflow`): bound to all of them by the
CLI as by the workflow, synced to each backend this host can sync to, each other one said once
and not attempted run by run; the workflow's condition and the sync agree on which runs need a
sync. The real wandb client offline, the loopback W&B stand-in (tests/wandb_server.py), the real
mlflow package on a sqlite store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import NEEDS_WANDB, PYTHON, copy_template, hermetic_env, run_cmd, set_rc
from mlflow_server import copy_store
from syncing import MAKE_JOBS, assert_mlflow_once, assert_wandb_once, binding, make_sweep, sync
from wandb_server import FakeWandbServer, wandb_env

from aexp.sync.plan import needs
from aexp.sync.rules import needs_sync
from aexp.workflow.conditions import needs_sync_of


@NEEDS_WANDB[0]
@NEEDS_WANDB[1]
def test_bind_tracker_binds_the_backends_of_signac_rc_and_both_get_the_run(
    tmp_path: Path, empty_store: Path
) -> None:
    root = copy_template(tmp_path / "p")
    set_rc(root, "tracker", "backend", "wandb, mlflow")
    env = hermetic_env(tmp_path / "env")
    (job,) = json.loads(run_cmd([PYTHON, "-c", MAKE_JOBS, "1", "2"], root, env, 120, True).stdout)
    aexp = [PYTHON, "-m", "aexp.cli"]

    printed = json.loads(run_cmd([*aexp, "bind-tracker", job[:8]], root, env, 120, True).stdout)

    assert printed["job_id"] == job and printed["backend"] == "wandb"
    assert list(printed["backends"]) == ["wandb", "mlflow"]
    assert binding(root, job)["backends"].keys() == {"wandb", "mlflow"}
    # --backend still says otherwise
    (other,) = json.loads(run_cmd([PYTHON, "-c", MAKE_JOBS.replace('"full"', '"x"'), "1", "2"],
                                  root, env, 120, True).stdout)  # fmt: skip
    alone = json.loads(run_cmd([*aexp, "bind-tracker", other, "--backend", "mlflow"], root, env,
                               120, True).stdout)  # fmt: skip
    assert list(alone["backends"]) == ["mlflow"]

    run_cmd([PYTHON, "project.py", "run", "-o", "execute", "finish"], root, env, 300, True)

    def shown(job_id: str) -> dict[str, Any]:
        return json.loads(run_cmd([*aexp, "show", job_id, "--json"], root, env, 120, True).stdout)

    before = shown(job)["sync"]  # each backend speaks for itself, not the primary for all
    assert {name: s["synced_at"] for name, s in before.items()} == {"wandb": None, "mlflow": None}
    uri = copy_store(empty_store, tmp_path / "store" / "mlflow.db")
    with FakeWandbServer() as server:
        sync_env = {**wandb_env(tmp_path, server.base_url), "MLFLOW_TRACKING_URI": uri}
        result = sync(root, env=sync_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.splitlines()[-1] == "wandb: 1 uploaded; mlflow: 2 replayed"
        assert_wandb_once(server, root, [job])
    assert_mlflow_once(uri, root, [job, other])
    assert binding(root, job)["synced_at"]
    after = shown(job)
    assert all(s["synced_at"] for s in after["sync"].values()), after["sync"]
    assert all(f["kind"] == "W&B offline run, synced" for f in after["run_files"])
    text = run_cmd([*aexp, "show", job], root, env, 120, True).stdout
    assert "sync (per backend)" in text and "  mlflow   synced " in text


@NEEDS_WANDB[0]
@NEEDS_WANDB[1]
def test_a_backend_this_host_cannot_sync_is_said_once_and_the_others_are_synced(
    tmp_path: Path, empty_store: Path
) -> None:
    env = hermetic_env(tmp_path / "env")
    root = tmp_path / "p"
    jobs = make_sweep(root, env, 3, backend="wandb, mlflow")
    uri = copy_store(empty_store, tmp_path / "store" / "mlflow.db")
    no_key = {**env, "MLFLOW_TRACKING_URI": uri}
    assert "WANDB_API_KEY" not in no_key

    start = time.monotonic()
    result = sync(root, env=no_key)
    took = time.monotonic() - start

    assert result.returncode == 1
    said = [line for line in result.stderr.splitlines() if "not attempted on this host" in line]
    assert said == [
        "sync: wandb not attempted on this host: no W&B credentials on this host (no "
        "WANDB_API_KEY, no netrc file, no wandb settings file): run `wandb login` or set "
        "WANDB_API_KEY"
    ], result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert result.stdout.splitlines()[-1] == (
        "wandb: 3 failed (no credentials: wandb login); mlflow: 3 replayed"
    )
    assert took < 60, "no `wandb sync` was started for each run"
    assert_mlflow_once(uri, root, jobs)
    for job in jobs:
        parts = binding(root, job)["backends"]
        assert parts["mlflow"]["synced_at"] and not parts["wandb"]["synced_at"]
        assert not parts["wandb"].get("inflight")

    # The workflow on the same host: the W&B part is said once per process, MLflow is synced.
    for job in jobs:
        document = json.loads((root / "workspace" / job / "signac_job_document.json").read_text())
        document["tracker"]["backends"]["mlflow"].update(synced_at=None, state=None)
        (root / "workspace" / job / "signac_job_document.json").write_text(json.dumps(document))
    flow = run_cmd([PYTHON, "project.py", "run"], root, no_key, 300, check=True)
    lines = flow.stderr.splitlines()
    assert sum("wandb not synced from this host" in line for line in lines) == 1, flow.stderr
    assert "sync_offline: mlflow: 3 replayed" in flow.stderr, flow.stderr
    assert all(binding(root, job)["backends"]["mlflow"]["synced_at"] for job in jobs)


# -- the workflow's condition and the sync agree ---------------------------------------------------
def _binding(**fields: Any) -> dict[str, Any]:
    parts = fields.pop("parts", {"wandb": {}})
    return {
        "backend": next(iter(parts)),
        "run_id": "abcdefgh",
        "state": "finished",
        "offline": True,
        "finished_at": "2026-01-01T00:00:00+00:00",
        "synced_at": None,
        "backends": {
            name: {"url": None, "synced_at": None, "error": None, **part}
            for name, part in parts.items()
        },
        **fields,
    }


KINDS = {
    "finished, W&B offline": (_binding(), True),
    "finished, W&B synced": (_binding(parts={"wandb": {"synced_at": "t"}}), False),
    "finished, online W&B": (_binding(offline=False), False),
    "finished, online W&B that failed in an attempt": (
        _binding(offline=False, parts={"wandb": {"error": "could not open the run: x"}}),
        True,
    ),
    "preempted, MLflow": (
        _binding(state="preempted", finished_at=None, parts={"mlflow": {}}),
        True,
    ),
    "preempted, W&B offline": (_binding(state="preempted", finished_at=None), True),
    "preempted, both synced so far": (
        _binding(
            state="preempted",
            finished_at=None,
            parts={"wandb": {"synced_at": "t"}, "mlflow": {"synced_at": "t"}},
        ),
        False,
    ),
    "failed, MLflow": (_binding(state="failed", parts={"mlflow": {}}), True),
    "running (its attempt may have died)": (
        _binding(state="running", finished_at=None, parts={"mlflow": {}}),
        False,
    ),
    "bound, never executed": (_binding(state="bound", finished_at=None), False),
    "finished, noop": (_binding(parts={"noop": {}}), False),
    "finished, W&B synced, MLflow not": (
        _binding(parts={"wandb": {"synced_at": "t"}, "mlflow": {}}),
        True,
    ),
    "finished, the binding synced": (_binding(synced_at="t"), False),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_operations_condition_and_the_sync_agree(kind: str) -> None:
    binding_, expected = KINDS[kind]
    wandb, replays, _ = needs(binding_, resync=False)
    assert needs_sync_of(binding_) == needs_sync(binding_) == expected
    assert bool(wandb or replays) == expected, (wandb, replays)


def test_the_deadline_cuts_a_block_and_leaves_no_alarm_behind() -> None:
    import signal

    from aexp.sync.deadline import DeadlineExceeded, within

    handler = signal.getsignal(signal.SIGALRM)
    outer, _ = signal.getitimer(signal.ITIMER_REAL)  # pytest-timeout's, if it uses signals
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="longer than the timeout"), within(0.5):
        while True:
            time.sleep(0.05)
    assert time.monotonic() - start < 2
    with within(5):
        pass
    assert signal.getsignal(signal.SIGALRM) == handler
    left, interval = signal.getitimer(signal.ITIMER_REAL)
    assert interval == 0.0
    if outer:  # the earlier alarm is set again, for about the time it had left
        assert 0 < left <= outer
    else:
        assert left == 0.0
