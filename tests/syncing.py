"""Helpers of the sync tests: sweeps made by the template's real workflow, fragments with
wandb's record-order quirk, and what exactly-once means, checked against the servers.

A sweep is made once per test module (`python project.py run`, the real wandb client offline;
MLflow is fed at sync) and copied per test. "Exactly once" is checked against what the loopback W&B
stand-in received (tests/wandb_server.py: the rows the server holds per run, in order, and the
artifact versions committed) and against what MLflow stores (each metric's history), compared
with each run's journal, the job's own record.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, copy_template, run_cmd, set_rc
from mlflow_server import descendants  # noqa: F401 (the tests take it from here)
from wandb_server import FakeWandbServer, wandb_env

STEP_TIMEOUT = 300

MAKE_JOBS = """
import json, sys, aexp
n, epochs = int(sys.argv[1]), int(sys.argv[2])
ids = [aexp.create_run(experiment_id="E1", hypothesis_id="H1",
                       statepoint={"condition": "full", "seed": s, "epochs": epochs}).id
       for s in range(n)]
print(json.dumps(ids))
"""


def make_sweep(
    root: Path, env: dict[str, str], n: int, *, backend: str = "wandb", epochs: int = 3
) -> list[str]:
    """A template project at `root` with `n` finished runs (W&B offline unless `backend` says
    otherwise); returns the job ids in creation order."""
    copy_template(root)
    set_rc(root, "tracker", "backend", backend)
    ids = json.loads(
        run_cmd(
            [PYTHON, "-c", MAKE_JOBS, str(n), str(epochs)], root, env, STEP_TIMEOUT, True
        ).stdout
    )
    run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker", "execute", "finish"], root, env,
            STEP_TIMEOUT, check=True)  # fmt: skip
    for job_id in ids:
        assert binding(root, job_id)["state"] == "finished", job_id
    return ids


def doc(root: Path, job_id: str) -> dict[str, Any]:
    return json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())


def binding(root: Path, job_id: str) -> dict[str, Any]:
    return doc(root, job_id)["tracker"]


def write_doc(root: Path, job_id: str, document: dict[str, Any]) -> None:
    (root / "workspace" / job_id / "signac_job_document.json").write_text(json.dumps(document))


def journal_of(root: Path, job_id: str) -> Any:
    from aexp.journal import journal_path, read_journal

    return read_journal(journal_path(root / "workspace" / job_id, binding(root, job_id)["run_id"]))


def fragments(root: Path, job_id: str) -> list[Path]:
    return sorted((root / "workspace" / job_id / "wandb").glob("offline-run-*"))


# -- wandb's record-order quirk -------------------------------------------------------------------
def quirk(folder: Path) -> None:
    """Rewrite the fragment in `folder` as wandb 0.31 sometimes writes it under load: its last
    `environment` record after its `exit` record. The records are wandb's own (decoded with its
    protobuf `Record`, re-framed unchanged; one made with that type where the fragment has none);
    `wandb sync` then uploads the whole run, writes its marker, and logs `runfiles: called
    UploadNow() after Finish()` for it."""
    from aexp.wandb_offline.decode import record_class
    from aexp.wandb_offline.framing import read_log, write_log

    (log,) = folder.glob("run-*.wandb")
    record = record_class()
    payloads = read_log(log).payloads
    kinds = []
    for payload in payloads:
        parsed = record()
        parsed.ParseFromString(payload)
        kinds.append(parsed.WhichOneof("record_type"))
    if "environment" in kinds:
        last_env = len(kinds) - 1 - kinds[::-1].index("environment")
        moved = payloads.pop(last_env)
        kinds.pop(last_env)
    else:  # a run that ended before wandb's system probe wrote its record (seen under load)
        made = record()
        made.environment.os = platform.platform()
        made.environment.python = f"{platform.python_implementation()} {platform.python_version()}"
        made.environment.started_at.GetCurrentTime()
        moved = made.SerializeToString()
    payloads.insert(kinds.index("exit") + 1, moved)
    log.unlink()
    write_log(log, payloads)


# -- exactly once ---------------------------------------------------------------------------------
def expected(root: Path, job_id: str) -> tuple[list[int], dict[str, int]]:
    """The journal's history steps, in order, and its artifacts (name -> 1)."""
    from aexp.wandb_offline.repair import artifact_name

    journal = journal_of(root, job_id)
    steps = [row.step for row in journal.history()]
    artifacts = {artifact_name(a.name): 1 for a in journal.artifacts}
    return steps, artifacts


def assert_wandb_once(server: Any, root: Path, job_ids: list[str]) -> None:
    """Every journal row of every job on the W&B stand-in exactly once, in order, and each
    artifact exactly one version."""
    received = server.received()
    for job_id in job_ids:
        run_id = binding(root, job_id)["run_id"]
        steps, artifacts = expected(root, job_id)
        got = received.get(run_id)
        assert got is not None, f"run {run_id} of job {job_id} never reached the server"
        assert got["steps"] == steps, (job_id, run_id, got["steps"], steps)
        assert got["artifact_versions"] == artifacts, (job_id, got["artifact_versions"])
        # The run's page is recorded however its upload ended (a sync killed mid-upload
        # included: the next one learns it from the server's account).
        url = (binding(root, job_id)["backends"]["wandb"].get("url") or "").rstrip("/")
        assert url.startswith(server.base_url) and url.endswith(f"/runs/{run_id}"), (job_id, url)


def mlflow_steps(uri: str, run_id: str, metric: str = "loss") -> list[int]:
    """The steps MLflow stores for `metric` of aexp run `run_id` (one MLflow run required)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`aexp.run_id` = '{run_id}'",
    )
    assert len(runs) == 1, f"{len(runs)} MLflow runs for {run_id}"
    return sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, metric))


def assert_mlflow_once(uri: str, root: Path, job_ids: list[str]) -> None:
    """One MLflow run per aexp run, each of its `loss` steps once, equal to the journal's."""
    for job_id in job_ids:
        steps, _ = expected(root, job_id)
        assert mlflow_steps(uri, binding(root, job_id)["run_id"]) == sorted(steps), job_id


def sync(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """`aexp sync-offline ARGS` in `root`, output captured."""
    return run_cmd([PYTHON, "-m", "aexp.cli", "sync-offline", *args], root, env, timeout)


def sync_until_done(root: Path, env: dict[str, str] | None = None, passes: int = 4) -> list[Any]:
    """Sync until a pass exits 0 (at most `passes`); returns every pass's result."""
    results = []
    for _ in range(passes):
        results.append(sync(root, env=env))
        if results[-1].returncode == 0:
            return results
    raise AssertionError(
        "the sync never converged:\n" + "\n---\n".join(r.stdout + r.stderr for r in results)
    )


def wait_gone(pids: list[int], timeout: float = 120) -> None:
    """Wait until none of `pids` runs (a kill -9'd sync's `wandb sync` finishes on its own)."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_sync(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "aexp.cli", "sync-offline", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


# -- fixtures a test module takes by importing them (it defines its own `sweep`): `copy`, `server`
@pytest.fixture(name="copy")
def copy_fixture(sweep: Any, tmp_path: Path) -> Path:
    """A private copy of the module's sweep (`sweep.root`)."""
    root = tmp_path / "p"
    shutil.copytree(sweep.root, root, symlinks=True)
    return root


@pytest.fixture(name="server")
def server_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandbServer]:
    """The loopback W&B stand-in, with this process's environment pointing wandb at it."""
    with FakeWandbServer() as srv:
        for key, value in wandb_env(tmp_path, srv.base_url).items():
            monkeypatch.setenv(key, value)
        yield srv
