"""Syncing into MLflow, bounded and once: the real mlflow package (sqlite stores, and a stand-in
for a failing tracking server, tests/mlflow_server.py's BrokenMlflowServer: a real `mlflow server`
cannot be made to answer 500 or hang on purpose), the template's real workflow.

- a server answering 500, or hanging, fails each run within `--timeout`, one line per run;
- a read-only store is one line per run, no traceback;
- two syncs at once on a sqlite store that does not exist yet: every run once, the store healthy;
- `backend = mlflow` alone: `python project.py run` replays (no W&B credentials needed);
- a replay cut short is settled from what MLflow holds before anything is sent again;
- MLflow's INFO lines stay off stderr unless `-v`; `--dry-run` names its unit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import PYTHON, hermetic_env, run_cmd
from mlflow_server import BrokenMlflowServer, copy_store
from syncing import (
    MAKE_JOBS,
    assert_mlflow_once,
    binding,
    copy_fixture,  # noqa: F401 (fixtures `copy`, `server`)
    doc,
    make_sweep,
    start_sync,
    sync,
    write_doc,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed"
)
RUNS = 4


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Four finished runs of the template whose backend is MLflow alone (never replayed yet)."""
    base = tmp_path_factory.mktemp("mlsync")
    root = base / "sweep"
    ids = make_sweep(root, hermetic_env(base / "env"), RUNS, backend="mlflow")
    assert not (root / "mlflow.db").exists()
    return SimpleNamespace(root=root, ids=ids)


def env_with(uri: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri}


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(result.stdout)


# -- bounded --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "health"),
    [("error500", "ok"), ("error500", "same"), ("hang", "ok"), ("hang", "same")],
    ids=["500-api", "500-everything", "hang-api", "hang-everything"],
)
def test_a_server_answering_500_or_hanging_fails_each_run_within_the_timeout(
    copy: Path, sweep: SimpleNamespace, mode: str, health: str
) -> None:
    timeout = 6
    with BrokenMlflowServer(mode, health=health) as broken:
        start = time.monotonic()
        result = sync(copy, "--timeout", str(timeout), "--json", env=env_with(broken.uri))
        elapsed = time.monotonic() - start

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = as_json(result)
    assert report["backends"]["mlflow"]["failed"] == RUNS
    replays = [r for r in report["results"] if r["backend"] == "mlflow"]
    assert len(replays) == RUNS and not any(r["ok"] for r in replays)
    for r in replays:
        assert r["duration"] <= timeout + 1, r
    # A server that lets one replay run out of time is not given the others' time too.
    assert elapsed < timeout * 2 + 30, elapsed
    if mode == "error500" and health == "same":
        assert all("answers 500" in r["stderr"] for r in replays), replays
    errors = [binding(copy, job)["backends"]["mlflow"]["error"] for job in sweep.ids]
    assert any(errors), "what a replay met is recorded in its part"
    assert not any(binding(copy, job)["backends"]["mlflow"]["synced_at"] for job in sweep.ids)


def test_a_read_only_store_is_one_line_per_run(
    copy: Path, sweep: SimpleNamespace, tmp_path: Path, empty_store: Path
) -> None:
    source, mounted = tmp_path / "store", tmp_path / "ro"
    copy_store(empty_store, source / "mlflow.db")
    mounted.mkdir()
    bound = subprocess.run(["mount", "--bind", str(source), str(mounted)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip(
            "a read-only store needs a read-only bind mount (root bypasses file modes), and "
            f"mounting failed here: {bound.stderr.decode().strip()}"
        )
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)], check=True)
        result = sync(copy, env=env_with(f"sqlite:///{mounted}/mlflow.db"))
    finally:
        subprocess.run(["umount", "-l", str(mounted)], capture_output=True)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == RUNS, result.stderr
    for line in lines:
        assert line.startswith("failed: job ") and "(mlflow): " in line, line
        assert "cannot be written" in line and "read-only" in line, line
    assert result.stdout.strip().startswith(f"mlflow: {RUNS} failed (")


# -- one store, created once ---------------------------------------------------------------------
TRIALS = 4


def _store_health(path: Path) -> None:
    """The store is whole: no table left behind by a half-done migration, its schema at
    MLflow's head revision, readable by MLflow's own client."""
    from mlflow.store.db.utils import _get_latest_schema_revision
    from mlflow.tracking import MlflowClient

    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
        version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert not [t for t in tables if t.startswith("_alembic_tmp")], tables
    assert version == [(_get_latest_schema_revision(),)]
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()


@pytest.mark.timeout(900)
def test_two_syncs_at_once_on_a_fresh_sqlite_store_replay_every_run_once(
    sweep: SimpleNamespace, tmp_path: Path
) -> None:
    env = hermetic_env(tmp_path / "env")
    root = tmp_path / "p"
    shutil.copytree(sweep.root, root, symlinks=True)
    more = json.loads(run_cmd([PYTHON, "-c", MAKE_JOBS, "8", "2"], root, env, 120, True).stdout)
    run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker", "execute", "finish"], root, env,
            300, check=True)  # fmt: skip
    jobs = sorted({*sweep.ids, *more})
    half = len(jobs) // 2
    for trial in range(TRIALS):
        store = tmp_path / f"store{trial}" / "mlflow.db"
        store.parent.mkdir()
        trial_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
        for job in jobs:  # not replayed yet, as far as the documents know
            document = doc(root, job)
            document["tracker"]["synced_at"] = None
            document["tracker"]["backends"]["mlflow"].update(synced_at=None, state=None)
            write_doc(root, job, document)
        first = start_sync(root, trial_env, *jobs[:half])
        second = start_sync(root, trial_env, *jobs[half:])
        for proc in (first, second):
            assert proc.wait(timeout=300) == 0, proc.stderr.read()
            assert "Traceback" not in proc.stderr.read()
        assert_mlflow_once(f"sqlite:///{store}", root, jobs)
        _store_health(store)


HALF_MIGRATED = """
import sqlite3, sys
import alembic.command, sqlalchemy
from mlflow.store.db.utils import _get_alembic_config
from mlflow.store.tracking.dbmodels.initial_models import Base
url = "sqlite:///" + sys.argv[1]
engine = sqlalchemy.create_engine(url)
Base.metadata.create_all(engine)  # what MLflow's first use of a new store does first
config = _get_alembic_config(url)
with engine.begin() as connection:  # then its migrations, stopped after this revision
    config.attributes["connection"] = connection
    alembic.command.upgrade(config, "c8d9e0f1a2b3")
with sqlite3.connect(sys.argv[1]) as db:  # the next one was killed inside its batch step
    db.execute("CREATE TABLE _alembic_tmp_experiments (experiment_id INTEGER)")
"""


def test_a_store_left_half_migrated_gets_one_sentence_naming_the_repair_that_works(
    copy: Path, sweep: SimpleNamespace, tmp_path: Path
) -> None:
    """A store a killed migration left behind (measured: killing MLflow's first use of a new
    store at random moments left `_alembic_tmp_experiments` at revision c8d9e0f1a2b3), made
    here with MLflow's own migrations: every run says the same one sentence, whose repair,
    followed to the letter, makes the store whole."""
    store = tmp_path / "broken" / "mlflow.db"
    store.parent.mkdir()
    run_cmd([PYTHON, "-c", HALF_MIGRATED, str(store)], tmp_path, check=True)

    result = sync(copy, env=env_with(f"sqlite:///{store}"))

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == RUNS and "Traceback" not in result.stderr, result.stderr
    repairs = {line.split("repair it: ", 1)[-1] for line in lines}
    assert len(repairs) == 1, lines
    (repair,) = repairs
    assert repair == (
        f"sqlite3 {store} 'DROP TABLE _alembic_tmp_experiments' && "
        f"mlflow db upgrade sqlite:///{store}"
    )
    if shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 command the repair names is not installed here")
    env = {**os.environ, "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", repair], env=env, check=True, capture_output=True, timeout=300)
    assert sync(copy, env=env_with(f"sqlite:///{store}")).returncode == 0
    assert_mlflow_once(f"sqlite:///{store}", copy, sweep.ids)
    _store_health(store)


# -- MLflow alone, in the workflow ------------------------------------------------------------
def test_mlflow_alone_is_replayed_by_project_py_run(
    copy: Path, sweep: SimpleNamespace, tmp_path: Path, empty_store: Path
) -> None:
    copy_store(empty_store, copy / "mlflow.db")  # the default store: mlflow.db at the root
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    assert "WANDB_API_KEY" not in env

    result = run_cmd([PYTHON, "project.py", "run"], copy, env, 300, check=True)

    assert "not synced from this host" not in result.stderr, result.stderr
    assert f"sync_offline: mlflow: {RUNS} replayed" in result.stderr, result.stderr
    assert_mlflow_once(f"sqlite:///{copy / 'mlflow.db'}", copy, sweep.ids)
    for job in sweep.ids:
        assert binding(copy, job)["synced_at"]
    again = run_cmd([PYTHON, "project.py", "run"], copy, env, 300, check=True)
    assert "sync_offline" not in again.stderr, "nothing left to sync"


# -- a replay cut short -----------------------------------------------------------------------
def test_a_replay_cut_short_is_settled_from_what_mlflow_holds(
    copy: Path, sweep: SimpleNamespace, tmp_path: Path, empty_store: Path
) -> None:
    uri = copy_store(empty_store, tmp_path / "s" / "mlflow.db")
    assert sync(copy, env=env_with(uri)).returncode == 0
    held, lost = sweep.ids[0], sweep.ids[1]
    for job in (held, lost):  # a replay whose outcome was never recorded
        document = doc(copy, job)
        document["tracker"]["synced_at"] = None
        document["tracker"]["backends"]["mlflow"].update(
            synced_at=None,
            inflight={"since": "2026-01-01T00:00:00+00:00", "rows": 3, "artifacts": 1},
        )
        write_doc(copy, job, document)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (gone,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`aexp.run_id` = '{binding(copy, lost)['run_id']}'",
    )
    client.delete_run(gone.info.run_id)  # this one never arrived after all

    result = sync(copy, "--json", env=env_with(uri))

    assert result.returncode == 0, result.stderr
    by_job = {r["job_id"]: r for r in as_json(result)["results"] if r["backend"] == "mlflow"}
    assert "already holds the whole run" in by_job[held]["stdout"]
    assert by_job[lost]["stdout"].startswith("replayed into mlflow: 3 row(s), 1 artifact(s)")
    assert set(by_job) == {held, lost}
    assert_mlflow_once(uri, copy, sweep.ids)
    for job in (held, lost):
        part = binding(copy, job)["backends"]["mlflow"]
        assert part["synced_at"] and not part.get("inflight")


# -- what a sync says -------------------------------------------------------------------------
def test_mlflows_own_lines_stay_off_stderr_unless_verbose(copy: Path, tmp_path: Path) -> None:
    quiet = sync(copy, env=env_with(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and quiet.stdout == f"mlflow: {RUNS} replayed\n"
    for job in os.listdir(copy / "workspace"):  # not synced, again
        document = doc(copy, job)
        document["tracker"]["synced_at"] = None
        document["tracker"]["backends"]["mlflow"].update(synced_at=None, state=None)
        write_doc(copy, job, document)
    loud = sync(copy, "-v", env=env_with(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}"))
    assert loud.returncode == 0
    assert "Creating initial MLflow database tables" in loud.stderr, loud.stderr


def test_a_dry_run_names_its_unit(copy: Path, tmp_path: Path) -> None:
    result = sync(copy, "--dry-run", env=env_with(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == f"dry run: mlflow: would replay {RUNS} run(s)"
    assert not (tmp_path / "mlflow.db").exists()
