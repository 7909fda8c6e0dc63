"""What W&B collects once per process for aexp's runs still reaches the server, as W&B sends it.

aexp/trackers/wandb_once.py collects the installed packages' list and the git state once per
process instead of at every `wandb.init`. Here the template runs a small sweep (`python project.py
run`, W&B offline) in a git repository, a plain `wandb.init(mode="offline")` script runs beside it
as the reference of what W&B itself produces, and everything is uploaded by the real `wandb sync`
to the loopback stand-in for W&B's cloud (tests/wandb_server.py): every run of the sweep must
arrive with W&B's requirements.txt (same bytes) and git remote and commit, and its complete
history. wandb is never imported by this process; every subprocess has a timeout.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import NEEDS_WANDB, PYTHON, copy_template, hermetic_env, run_cmd
from wandb_server import FakeWandbServer, wandb_env

from aexp.sync import sync_offline_runs

pytestmark = NEEDS_WANDB

TIMEOUT = 180  # every subprocess
EPOCHS = 3
# W&B strips the password of a remote URL; the reference shows what it sends instead.
REMOTE = "https://someone:secret@git.example.invalid/lab/sweep.git"

MAKE_JOBS = f"""
import json, aexp
ids = [aexp.create_run(experiment_id="E018", hypothesis_id="H012",
                       statepoint={{"condition": c, "seed": 0, "epochs": {EPOCHS}}}).id
       for c in ("full", "ablated")]
print(json.dumps(ids))
"""

# What a user writes by hand: W&B with its defaults collects both facts itself.
REFERENCE = """
import sys, wandb
run = wandb.init(project="aexp-demo", mode="offline", dir=sys.argv[1])
run.log({"x": 1})
run.finish()
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=60,
    )


def run_id(root: Path, job_id: str) -> str:
    document = root / "workspace" / job_id / "signac_job_document.json"
    return json.loads(document.read_text())["tracker"]["run_id"]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The sweep and the reference run, made in a git repository and synced to the stand-in."""
    base = tmp_path_factory.mktemp("once")
    root = copy_template(base / "template")
    git(root, "init", "-q")
    git(root, "remote", "add", "origin", REMOTE)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the template")
    env = hermetic_env(base / "env")
    ids = json.loads(run_cmd([PYTHON, "-c", MAKE_JOBS], root, env, TIMEOUT, check=True).stdout)
    run_cmd([PYTHON, "project.py", "run"], root, env, TIMEOUT, check=True)
    reference = root / "reference"
    reference.mkdir()
    run_cmd([PYTHON, "-c", REFERENCE, str(reference)], root, env, TIMEOUT, check=True)
    (folder,) = (reference / "wandb").glob("offline-run-*")
    reference_id = folder.name.rsplit("-", 1)[1]

    with FakeWandbServer() as server, pytest.MonkeyPatch.context() as mp:
        sync_env = wandb_env(base, server.base_url)
        for key, value in sync_env.items():
            mp.setenv(key, value)
        # A module fixture runs before the tests' own environment is set up: an earlier test's
        # in-process wandb may have left the address of its service (WANDB_SERVICE) behind, and
        # that service may have ended since. This sync starts its own.
        mp.delenv("WANDB_SERVICE", raising=False)
        results = sync_offline_runs(root)
        assert len(results) == 2 and all(r.ok for r in results), results
        run_cmd([PYTHON, "-m", "wandb", "sync", str(folder)], root, sync_env, TIMEOUT, True)
        requests = list(server.requests)
        runs = server.runs()
    return SimpleNamespace(
        root=root,
        runs={run_id(root, job_id): job_id for job_id in ids},
        reference=reference_id,
        requests=requests,
        server_runs=runs,
    )


def uploaded(synced: SimpleNamespace, run: str, name: str) -> bytes:
    (body,) = [
        r.body
        for r in synced.requests
        if r.method == "PUT" and r.run_id == run and r.path.endswith(f"/{run}/{name}")
    ]
    return body


def git_state(synced: SimpleNamespace, run: str) -> tuple[str | None, str | None]:
    """The (remote, commit) the run was created with (W&B's UpsertBucket `repo`, `commit`)."""
    for r in synced.requests:
        if r.run_id == run and r.operation == "UpsertBucket" and r.variables.get("commit"):
            return r.variables.get("repo"), r.variables.get("commit")
    return None, None


def test_every_run_uploads_the_requirements_wandb_itself_writes(synced: SimpleNamespace) -> None:
    expected = uploaded(synced, synced.reference, "requirements.txt")
    assert b"\nwandb==0.31.0\n" in b"\n" + expected  # W&B's own list, this environment's
    for run in synced.runs:
        assert uploaded(synced, run, "requirements.txt") == expected


def test_every_run_carries_the_repositorys_remote_and_commit_as_wandb_sends_them(
    synced: SimpleNamespace,
) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=synced.root, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    expected = git_state(synced, synced.reference)
    assert expected[1] == head
    assert "secret" not in (expected[0] or "") and "git.example.invalid" in (expected[0] or "")
    for run in synced.runs:
        assert git_state(synced, run) == expected


def test_every_run_arrives_complete(synced: SimpleNamespace) -> None:
    for run in synced.runs:
        view = synced.server_runs[run]
        assert [row["_step"] for row in view["history"]] == list(range(EPOCHS))
        assert [row["epoch"] for row in view["history"]] == list(range(EPOCHS))
        assert view["exitcode"] == 0 and view["complete"]


def test_what_the_user_switched_off_in_wandb_stays_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_template(tmp_path / "template")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the template")
    env = hermetic_env(tmp_path / "env")
    env.update(WANDB__SAVE_REQUIREMENTS="false", WANDB_DISABLE_GIT="true")
    ids = json.loads(run_cmd([PYTHON, "-c", MAKE_JOBS], root, env, TIMEOUT, check=True).stdout)
    run_cmd([PYTHON, "project.py", "run"], root, env, TIMEOUT, check=True)

    with FakeWandbServer() as server:
        for key, value in wandb_env(tmp_path, server.base_url).items():
            monkeypatch.setenv(key, value)
        results = sync_offline_runs(root)
        assert len(results) == 2 and all(r.ok for r in results), results
        seen = SimpleNamespace(requests=list(server.requests))
    for job_id in ids:
        run = run_id(root, job_id)
        names = [r.path.rsplit("/", 1)[1] for r in seen.requests if r.method == "PUT"]
        assert "requirements.txt" not in names
        assert git_state(seen, run) == (None, None)
