"""The MLflow backend against the real mlflow package: a local sqlite store and a real
`mlflow server` on 127.0.0.1, both inside the test's temporary directories.

Every store is read back with MLflow's own client. The server (session-scoped, ~15-45 s to start
on a loaded 2-core machine) is shared: each test uses its own experiment. MLflow's telemetry is
off, MLFLOW_* variables of the outer environment are removed, nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aexp.errors import TrackerInitError, TrackerUsageError
from aexp.journal import JournalWriter, journal_path, read_journal

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlflow_server import MLFLOW_ENV, copy_store, mlflow_env

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed"
)
REPO = Path(__file__).resolve().parents[1]
MAX_FLOAT = 1.7976931348623157e308  # what MLflow's SQL stores keep for +inf


@pytest.fixture(autouse=True)
def _mlflow_hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("MLFLOW_"):
            monkeypatch.delenv(key)
    for key, value in MLFLOW_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(params=["sqlite", "server"])
def uri(request: pytest.FixtureRequest, tmp_path: Path, empty_store: Path) -> str:
    if request.param == "sqlite":
        return copy_store(empty_store, tmp_path / "store" / "mlflow.db")
    return request.getfixturevalue("server").uri


@pytest.fixture
def sqlite_uri(tmp_path: Path, empty_store: Path) -> str:
    return copy_store(empty_store, tmp_path / "store" / "mlflow.db")


def project_name() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"  # the server is shared: one experiment per test


def adapter_for(uri: str):
    from aexp.trackers.mlflow import MlflowAdapter

    return MlflowAdapter(tracking_uri=uri)


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def history(uri: str, mlid: str, key: str) -> list[tuple[int, float]]:
    points = client(uri).get_metric_history(mlid, key)
    return sorted((m.step, m.value) for m in points)


def same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    return len(a) == len(b) and all(
        s1 == s2 and (v1 == v2 or (math.isnan(v1) and math.isnan(v2)))
        for (s1, v1), (s2, v2) in zip(a, b, strict=True)
    )


def artifact_paths(uri: str, mlid: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for info in client(uri).list_artifacts(mlid, path):
        if info.is_dir:
            found |= artifact_paths(uri, mlid, info.path)
        else:
            found.add(info.path)
    return found


def run_python(code: str, tmp_path: Path, *args: str, timeout: float = 300) -> str:
    env = mlflow_env(tmp_path / "sub", dict(os.environ))
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# -- importing, the SDK missing -----------------------------------------------------------------
def test_importing_aexp_and_its_trackers_does_not_import_mlflow(tmp_path):
    out = run_python(
        "import sys, aexp, aexp.trackers, aexp.trackers.mlflow\n"
        "from aexp.trackers.mlflow import MlflowAdapter, resolve_tracking_uri\n"
        "a = MlflowAdapter(resolve_tracking_uri('.', None))\n"
        "a.check_run(project='p', group='H/E/c', tags=['x'], config={'lr': 0.1})\n"
        "assert a.run_url(project='p', run_id='abc', offline=True) is None\n"
        "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))\n",
        tmp_path,
    )
    assert out.strip() == "[]"


def test_hidden_sdk_gives_the_install_hint_and_aexp_still_imports(tmp_path):
    out = run_python(
        "import sys\n"
        "sys.modules['mlflow'] = None\n"
        "import aexp, aexp.trackers\n"
        "from aexp.errors import TrackerInitError\n"
        "from aexp.trackers.mlflow import MlflowAdapter\n"
        "from aexp.trackers.mlflow.client import import_sdk\n"
        "adapter = MlflowAdapter()  # a compute node binds without mlflow\n"
        "for use in (lambda: adapter.init_run(project='p', group='g'), import_sdk):\n"
        "    try:\n"
        "        use()\n"
        "    except TrackerInitError as exc:\n"
        "        print(exc)\n",
        tmp_path,
    )
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert all("pip install 'agentic-experiments[mlflow]'" in line for line in lines)


# -- the tracking URI ---------------------------------------------------------------------------
def test_tracking_uri_precedence_environment_then_settings_then_default(tmp_path, monkeypatch):
    from aexp.trackers.mlflow import resolve_tracking_uri

    root = tmp_path / "proj"
    assert resolve_tracking_uri(root, None) == f"sqlite:///{root.resolve()}/mlflow.db"
    assert resolve_tracking_uri(root, "  ") == f"sqlite:///{root.resolve()}/mlflow.db"
    assert resolve_tracking_uri(root, "sqlite:///db/runs.db") == (
        f"sqlite:///{root.resolve()}/db/runs.db"
    )
    assert resolve_tracking_uri(root, "sqlite:////abs/x.db?timeout=30") == (
        "sqlite:////abs/x.db?timeout=30"
    )
    assert resolve_tracking_uri(root, "http://h:5000") == "http://h:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_tracking_uri(root, "http://h:5000") == f"sqlite:///{root.resolve()}/env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert resolve_tracking_uri(root, "http://h:5000") == "http://h:5000"


def test_adapter_uri_argument_then_environment_then_mlflow_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert adapter_for(None).tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert adapter_for(None).tracking_uri == "http://127.0.0.1:9"
    assert adapter_for("sqlite:///a.db").tracking_uri == f"sqlite:///{tmp_path.resolve()}/a.db"


def test_passwords_never_leave_the_uri_into_handles_or_messages():
    from aexp.trackers.mlflow.uri import redact, run_page

    assert redact("https://me:s3cret@host:8443/x") == "https://me@host:8443/x"
    assert "s3cret" not in (run_page("https://me:s3cret@host", "1", "r") or "")
    with pytest.raises(TrackerInitError) as info:
        adapter_for("http://me:s3cret@127.0.0.1:9").list_runs(project="p")
    assert "s3cret" not in str(info.value)


def test_unreachable_server_is_one_clear_error_quickly():
    t0 = time.monotonic()
    with pytest.raises(TrackerInitError, match=r"cannot reach the MLflow tracking server"):
        adapter_for("http://127.0.0.1:9").list_runs(project="p")
    assert time.monotonic() - t0 < 15


# -- limits ---------------------------------------------------------------------------------------
def test_limits_are_those_of_the_installed_mlflow():
    from mlflow.utils import validation as v

    from aexp.trackers.mlflow import limits

    assert limits.MAX_KEY_LENGTH == v.MAX_ENTITY_KEY_LENGTH
    assert limits.MAX_PARAM_VALUE_LENGTH == v.MAX_PARAM_VAL_LENGTH
    assert limits.MAX_TAG_VALUE_LENGTH == v.MAX_TAG_VAL_LENGTH
    assert limits.MAX_EXPERIMENT_NAME_LENGTH == v.MAX_EXPERIMENT_NAME_LENGTH
    assert limits.MAX_PARAMS_PER_BATCH == v.MAX_PARAMS_TAGS_PER_BATCH
    assert limits.MAX_METRICS_PER_BATCH == v.MAX_METRICS_PER_BATCH
    assert limits.MAX_ENTITIES_PER_BATCH == v.MAX_ENTITIES_PER_BATCH
    assert limits.MAX_BATCH_BYTES == v.MAX_BATCH_LOG_REQUEST_SIZE


NAMES = ["loss", "val/acc", "a b:c-d.e_f", "a=b", "x(1)", "a//b", "/a", "./a", "..", "..x", ".",
         "é", "a/", "x" * 250, "x" * 251, "lr@0.1", "a/../b"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_name_rules_agree_with_mlflow_and_mapped_names_are_accepted(name):
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_metric_name, _validate_param_name

    from aexp.trackers.mlflow.limits import MAX_KEY_LENGTH, mlflow_name, name_problem

    try:
        _validate_param_name(name)
        accepted = len(name) <= MAX_KEY_LENGTH  # the length is checked separately by MLflow
    except MlflowException:
        accepted = False
    assert (name_problem(name) is None) == accepted
    mapped = mlflow_name(name)
    assert mapped == mlflow_name(name)  # deterministic: live and replayed runs agree
    assert (mapped == name) == accepted
    _validate_metric_name(mapped)
    assert len(mapped) <= MAX_KEY_LENGTH


def test_long_names_stay_apart():
    from aexp.trackers.mlflow.limits import mlflow_name

    assert mlflow_name("x" * 300 + "a") != mlflow_name("x" * 300 + "b")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"project": ""}, "MLflow needs an experiment name"),
        ({"project": "p" * 501}, "at most 500 characters"),
        ({"config": {"lr=0.1": 1}}, "config key 'lr=0.1' cannot be an MLflow param name"),
        ({"config": {"k" * 251: 1}}, "is 251 characters long"),
        ({"config": {"a//b": 1}}, "normalises to the path 'a/b'"),
        ({"config": {"big": "v" * 6001}}, "at most 6000 characters per param value"),
        ({"config": {"a.b": 1, "a": {"b": 2}}}, "appears twice"),
        ({"group": "g" * 8001}, "at most 8000 characters per tag value"),
        ({"tags": ["t" * 8001]}, "at most 8000 characters per tag value"),
    ],
)
def test_check_run_refuses_what_mlflow_would_refuse_or_cut(sqlite_uri, kwargs, message):
    adapter = adapter_for(sqlite_uri)
    args = {"project": "p", "group": "H/E/c", "tags": [], "config": {}} | kwargs
    with pytest.raises(TrackerUsageError, match=message) as info:
        adapter.check_run(**args)
    assert str(info.value).count(". ") == 0  # one sentence
    with pytest.raises(TrackerUsageError):  # and init_run writes nothing
        adapter.init_run(**args)
    assert client(sqlite_uri).get_experiment_by_name(args["project"] or "p") is None


def test_check_run_accepts_what_mlflow_accepts(sqlite_uri):
    adapter_for(sqlite_uri).check_run(
        project="p" * 500,
        group="H/E/" + "c" * 7996,
        tags=["lr=0.1", "with space"],
        config={"a": {"b": 1}, "v": "x" * 6000, "k" * 250: None},
    )


# -- the adapter on its own ----------------------------------------------------------------------
def test_adapter_live_init_log_artifact_finish_read_back(uri, tmp_path, request):
    adapter = adapter_for(uri)
    project = project_name()
    handle = adapter.init_run(
        project=project,
        group="H1/E2/full",
        tags=["H1", "E2", "full", "lr=0.1"],
        config={"lr": 0.1, "model": {"depth": 3}, "job_id": "f" * 32, "flag": True},
        notes="a note",
        offline=True,
    )
    assert len(handle.id) == 8 and handle.id.isalnum() and handle.id.islower()
    extra = handle.persistent_extra()
    assert set(extra) == {"mlflow_run_id", "experiment_id", "tracking_uri"}
    json.dumps(extra)
    assert handle.extra["_client"] is not None
    mlid = extra["mlflow_run_id"]
    if uri.startswith("http"):
        assert handle.url == f"{uri}/#/experiments/{extra['experiment_id']}/runs/{mlid}"
    else:
        assert handle.url is None
    adapter.log(handle, {"loss": 1.0, "ok": True, "phase": "warm", "skip": None}, step=0)
    adapter.log(handle, {"loss": float("nan"), "inf": float("inf"), "bad=key": 2}, step=5)
    adapter.log(handle, {"loss": 0.25, "phase": "main"})  # no step: the one after 5
    (tmp_path / "result.json").write_text('{"a": 1}')
    (tmp_path / "plots" / "sub").mkdir(parents=True)
    (tmp_path / "plots" / "a.txt").write_text("a")
    (tmp_path / "plots" / "sub" / "b.txt").write_text("b")
    adapter.log_artifact(handle, "result", tmp_path / "result.json")
    adapter.log_artifact(handle, "plots", tmp_path / "plots")
    with pytest.raises(TrackerUsageError, match="does not exist"):
        adapter.log_artifact(handle, "gone", tmp_path / "nothing.txt")
    adapter.finish(handle, exit_code=0)

    run = client(uri).get_run(mlid)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == handle.id
    assert run.data.params == {
        "lr": "0.1", "model.depth": "3", "job_id": "f" * 32, "flag": "True"
    }  # fmt: skip
    tags = run.data.tags
    expected = {
        "aexp.run_id": handle.id,
        "mlflow.runName": handle.id,
        "aexp.group": "H1/E2/full",
        "aexp.hypothesis": "H1",
        "aexp.experiment": "E2",
        "aexp.condition": "full",
        "aexp.job_id": "f" * 32,
        "aexp.tag.H1": "H1",
        "aexp.tag.E2": "E2",
        "aexp.tag.full": "full",
        "aexp.tag.lr_0.1": "lr=0.1",
        "mlflow.note.content": "a note",
        "aexp.last.phase": "main",
        "aexp.exit_code": "0",
    }
    assert {k: tags.get(k) for k in expected} == expected
    assert same(history(uri, mlid, "loss"), [(0, 1.0), (5, math.nan), (6, 0.25)])
    assert history(uri, mlid, "ok") == [(0, 1.0)]
    assert history(uri, mlid, "inf") == [(5, MAX_FLOAT)]
    assert history(uri, mlid, "bad_key") == [(5, 2.0)]
    assert history(uri, mlid, "skip") == []
    assert artifact_paths(uri, mlid) == {
        "result/result.json", "plots/a.txt", "plots/sub/b.txt"
    }  # fmt: skip
    # The files themselves stay inside the test's directories: beside the sqlite database, or
    # in the server's --artifacts-destination.
    where = Path(uri[len("sqlite:///") :]).parent if uri.startswith("sqlite") else None
    if where is None:
        where = request.getfixturevalue("server").root
    assert (where / ("mlartifacts" if uri.startswith("sqlite") else "artifacts")).is_dir()
    assert len(list(where.rglob("b.txt"))) == 1


@pytest.mark.parametrize(
    ("exit_code", "preempted", "status", "state"),
    [
        (0, False, "FINISHED", "finished"),
        (143, True, "KILLED", "preempted"),
        (1, False, "FAILED", "failed"),
    ],
)
def test_resume_from_stored_binding_and_end_states(uri, exit_code, preempted, status, state):
    from aexp.trackers.base import RunHandle

    adapter = adapter_for(uri)
    project = project_name()
    first = adapter.init_run(project=project, group="H/E/a", run_id="fixedid1")
    adapter.finish(first, exit_code=143, preempted=True)
    # Another process: the handle rebuilt from the job document (JSON only).
    stored = json.loads(json.dumps({"id": first.id, "extra": first.persistent_extra()}))
    for extra in (stored["extra"], {}):  # by MLflow run id, and by the aexp.run_id tag alone
        rebuilt = RunHandle(id=stored["id"], project=project, group="H/E/a", extra=extra)
        handle = adapter.resume_run(rebuilt, attempt=2)
        assert handle.extra["mlflow_run_id"] == first.extra["mlflow_run_id"]
        assert client(uri).get_run(handle.extra["mlflow_run_id"]).info.status == "RUNNING"
        assert [r.state for r in adapter.list_runs(project=project)] == ["running"]
    adapter.log(handle, {"x": 1}, step=3)
    adapter.finish(handle, exit_code=exit_code, preempted=preempted)
    run = client(uri).get_run(first.extra["mlflow_run_id"])
    assert run.info.status == status
    (record,) = adapter.list_runs(project=project)
    assert (record.id, record.state, record.exit_code) == ("fixedid1", state, exit_code)
    missing = RunHandle(id="nosuchid", project=project, group="H/E/a")
    with pytest.raises(TrackerInitError, match=r"no MLflow run tagged aexp\.run_id=nosuchid"):
        adapter.resume_run(missing)


def test_init_run_with_a_known_run_id_returns_its_run(sqlite_uri):
    adapter = adapter_for(sqlite_uri)
    one = adapter.init_run(project="p", group="H/E/a", config={"a": 1}, run_id="sameid12")
    two = adapter.init_run(project="p", group="H/E/a", config={"a": 1}, run_id="sameid12")
    assert one.extra["mlflow_run_id"] == two.extra["mlflow_run_id"]
    assert len(client(sqlite_uri).search_runs([one.extra["experiment_id"]])) == 1


def test_list_runs_filters_by_group_prefix_and_ignores_foreign_runs(uri):
    adapter = adapter_for(uri)
    project = project_name()
    for group in ("H1/E1/a", "H1/E1/b", "H1/E2/a", "H10/E1/a", "H_/E1/a", "Q'x/E1/a"):
        adapter.init_run(project=project, group=group, tags=[group.split("/")[2]])
    experiment_id = client(uri).get_experiment_by_name(project).experiment_id
    client(uri).create_run(experiment_id, tags={"aexp.group": "H1/E1/x"})  # not an aexp run

    def groups(prefix: str) -> list[str]:
        return [r.group for r in adapter.list_runs(project=project, group_prefix=prefix)]

    assert groups("H1/E1/") == ["H1/E1/a", "H1/E1/b"]
    assert groups("H1/") == ["H1/E1/a", "H1/E1/b", "H1/E2/a"]
    assert groups("H_") == ["H_/E1/a"]  # "_" is not a wildcard here
    assert groups("Q'") == ["Q'x/E1/a"]  # a quote does not break the search
    assert len(groups("")) == 6
    assert adapter.list_runs(project="no-such-experiment") == []
    record = adapter.list_runs(project=project, group_prefix="H1/E2")[0]
    assert (record.state, record.tags, record.project) == ("running", ["a"], project)


def test_concurrent_experiment_creation_is_not_an_error(sqlite_uri, monkeypatch):
    from aexp.trackers.mlflow.client import Store

    store = Store(sqlite_uri)
    other = client(sqlite_uri).create_experiment("raced")  # the other process won the race
    real = store.client.get_experiment_by_name
    calls = []

    def first_misses(name):
        calls.append(name)
        return None if len(calls) == 1 else real(name)

    monkeypatch.setattr(store.client, "get_experiment_by_name", first_misses)
    assert store.experiment_id("raced") == other
    assert len(calls) == 2


def test_deleted_experiment_says_how_to_recover(sqlite_uri):
    mlflow_client = client(sqlite_uri)
    mlflow_client.delete_experiment(mlflow_client.create_experiment("gone"))
    with pytest.raises(TrackerInitError, match="is deleted; restore it"):
        adapter_for(sqlite_uri).init_run(project="gone", group="H/E/a")


# -- replaying journals ---------------------------------------------------------------------------
def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def start_journal(job: Path, run_id: str, project: str, **init: Any) -> JournalWriter:
    writer = JournalWriter(journal_path(job, run_id))
    spec = {
        "group": "H1/E2/full",
        "tags": ["H1", "E2", "full", "lr=0.1"],
        "config": {
            "lr": 0.1,
            "seed": 3,
            "model.depth": 4,
            "job_id": "a" * 32,
            "limina.experiment_id": "E2",
            "limina.hypothesis_id": "H1",
        },
        "notes": "replayed",
    } | init
    writer.init_run(run_id=run_id, project=project, offline=True, backends=["mlflow"], **spec)
    return writer


def rich_journal(job: Path, run_id: str, project: str, bulk: int = 0) -> JournalWriter:
    """Three attempts: preempted, failed, finished; a re-done row, NaN, inf, strings, bools,
    None, a row without a step, an artifact file and an artifact directory; then `bulk` rows
    of four metrics."""
    (job / "plots" / "sub").mkdir(parents=True, exist_ok=True)
    (job / "result.json").write_text('{"score": 0.9}')
    (job / "plots" / "a.txt").write_text("a")
    (job / "plots" / "sub" / "b.txt").write_text("b")
    w = start_journal(job, run_id, project)
    w.resume_run(attempt=1, host="node1")
    for step in range(5):
        loss = math.nan if step == 2 else 1.0 / (step + 1)
        w.log({"loss": loss, "ok": step % 2 == 0, "phase": "warm", "none": None}, step)
    w.finish(143, preempted=True)
    w.resume_run(attempt=2, host="node2")
    w.log({"loss": 99.0}, 3, redo=True)  # re-done after the checkpoint: not history
    for step in range(5, 10):
        w.log({"loss": math.inf if step == 7 else 0.1, "phase": "main", "bad=key": step}, step)
    w.log_artifact("result", job / "result.json", 14, job_path=str(job))
    w.log_artifact("plots", job / "plots", 2, job_path=str(job))
    w.finish(1)
    w.resume_run(attempt=3, host="node3")
    w.log({"loss": 0.05, "phase": "done"}, 10)
    w.log({"loss": 0.04}, None)  # no step: the next one (11)
    for i in range(bulk):
        w.log({"loss": 1.0 / (i + 2), "acc": i / (bulk + 1), "lr": 0.01, "epoch": i}, 12 + i)
    return w


def expected_history(journal) -> dict[str, list[tuple[int, float]]]:
    from aexp.trackers.mlflow.limits import mlflow_name

    out: dict[str, list[tuple[int, float]]] = {}
    step = -1
    for row in journal.history():
        step = row.step if row.step is not None else step + 1
        for key, value in row.metrics.items():
            if isinstance(value, bool | int | float):
                value = float(value)
                out.setdefault(mlflow_name(key), []).append(
                    (step, MAX_FLOAT if value == math.inf else value)
                )
    return {key: sorted(points) for key, points in out.items()}


def assert_run_equals_journal(uri: str, journal, mlid: str) -> None:
    run = client(uri).get_run(mlid)
    for key, points in expected_history(journal).items():
        assert same(history(uri, mlid, key), points), key
    assert set(run.data.metrics) == set(expected_history(journal))
    assert run.data.params == {k: str(v) for k, v in journal.config.items()}
    tags = run.data.tags
    assert tags["aexp.run_id"] == journal.run_id == tags["mlflow.runName"]
    assert tags["aexp.group"] == journal.group
    parts = journal.group.split("/")
    assert [tags["aexp.hypothesis"], tags["aexp.experiment"], tags["aexp.condition"]] == parts
    assert tags["aexp.job_id"] == journal.config["job_id"]
    assert tags["mlflow.note.content"] == journal.init["notes"]
    from aexp.trackers.mlflow.mapping import labels_of

    assert labels_of(tags) == sorted(journal.init["tags"])
    strings = {}
    for row in journal.history():
        strings.update({k: v for k, v in row.metrics.items() if isinstance(v, str)})
    assert {k[len("aexp.last.") :]: v for k, v in tags.items() if k.startswith("aexp.last.")} == (
        strings
    )
    assert tags.get("aexp.replay.rows", "0") == str(len(journal.history()))
    # every point carries its row's journal time (what makes a resent point an exact duplicate)
    stamps = [
        int(datetime.fromisoformat(row.timestamp).timestamp() * 1000)
        for row in journal.history()
        if isinstance(row.metrics.get("loss"), float)
    ]
    points = sorted(client(uri).get_metric_history(mlid, "loss"), key=lambda m: m.step)
    assert [m.timestamp for m in points] == stamps


class Sends:
    """Counts the write calls the adapter's MLflow client makes."""

    NAMES = ("create_run", "log_batch", "log_artifact", "log_artifacts", "set_terminated",
             "update_run")  # fmt: skip

    def __init__(self, adapter, monkeypatch) -> None:
        self.calls: dict[str, int] = dict.fromkeys(self.NAMES, 0)
        self.metrics = 0
        store_client = adapter._store().client
        for name in self.NAMES:
            monkeypatch.setattr(
                store_client, name, self._counting(name, getattr(store_client, name))
            )

    def _counting(self, name, real):
        def call(*args, **kwargs):
            self.calls[name] += 1
            self.metrics += len(kwargs.get("metrics") or ())
            return real(*args, **kwargs)

        return call

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def test_replay_equals_the_journal_and_a_second_replay_sends_nothing(uri, tmp_path, monkeypatch):
    job = tmp_path / "job"
    writer = rich_journal(job, new_run_id(), project_name())
    writer.finish(0)
    journal = read_journal(writer.path)
    adapter = adapter_for(uri)
    result = adapter.replay(journal, job_path=str(job), state={})
    mlid = result.state["mlflow_run_id"]
    assert (result.rows, result.artifacts, result.complete) == (len(journal.history()), 2, True)
    assert result.state["status"] == "FINISHED"
    run = client(uri).get_run(mlid)
    assert run.info.status == "FINISHED"
    assert run.data.tags["aexp.exit_code"] == "0"
    started = datetime.fromisoformat(journal.attempts[0].started_at)
    assert run.info.start_time == int(started.timestamp() * 1000)
    assert_run_equals_journal(uri, journal, mlid)
    assert artifact_paths(uri, mlid) == {"result/result.json", "plots/a.txt", "plots/sub/b.txt"}
    if uri.startswith("http"):
        experiment_id = result.state["experiment_id"]
        assert result.url == f"{uri}/#/experiments/{experiment_id}/runs/{mlid}"
    else:
        assert result.url is None

    sends = Sends(adapter, monkeypatch)
    posts = _posts(uri)
    again = adapter.replay(journal, job_path=str(job), state=json.loads(json.dumps(result.state)))
    assert (again.rows, again.artifacts, again.complete) == (0, 0, True)
    assert sends.total == 0
    assert _posts(uri) == posts  # the server received no write at all
    lost = adapter.replay(journal, job_path=str(job), state={})  # the state lost: found by tag
    assert (lost.rows, lost.artifacts, lost.state["mlflow_run_id"]) == (0, 0, mlid)
    assert sends.total == 0
    assert len(client(uri).search_runs([result.state["experiment_id"]])) == 1
    assert_run_equals_journal(uri, journal, mlid)


_SERVER_LOGS: dict[str, Path] = {}


def _posts(uri: str) -> int | None:
    """POST requests the test server has answered (None for sqlite stores)."""
    log = _SERVER_LOGS.get(uri)
    if log is None:
        return None
    return sum(1 for line in log.read_text(errors="replace").splitlines() if '"POST ' in line)


@pytest.fixture(autouse=True)
def _know_server_logs(request: pytest.FixtureRequest) -> None:
    if "server" in request.fixturenames:
        started = request.getfixturevalue("server")
        _SERVER_LOGS[started.uri] = started.log


def test_replay_follows_a_run_through_its_attempts(uri, tmp_path):
    job = tmp_path / "job"
    project = project_name()
    w = start_journal(job, new_run_id(), project)
    adapter = adapter_for(uri)

    def replay(expect_status: str, complete: bool, rows: int):
        journal = read_journal(w.path)
        result = adapter.replay(journal, job_path=str(job), state={})
        run = client(uri).get_run(result.state["mlflow_run_id"])
        assert (run.info.status, result.complete, result.rows) == (expect_status, complete, rows)
        assert_run_equals_journal(uri, journal, result.state["mlflow_run_id"])
        return result

    first = replay("SCHEDULED", False, 0)  # bound, never executed
    assert [r.state for r in adapter.list_runs(project=project)] == ["bound"]
    w.resume_run(attempt=1)
    w.log({"x": 1.0}, 0)
    replay("RUNNING", False, 1)  # still executing (or died without a finish)
    w.log({"x": 2.0}, 1)
    w.finish(143, preempted=True)
    replay("KILLED", True, 1)
    w.resume_run(attempt=2)
    replay("RUNNING", False, 0)
    w.log({"x": 3.0}, 2)
    w.finish(2)
    replay("FAILED", True, 1)
    w.resume_run(attempt=3)
    w.finish(0)
    last = replay("FINISHED", True, 0)
    assert last.state["mlflow_run_id"] == first.state["mlflow_run_id"]
    (record,) = adapter.list_runs(project=project)
    assert (record.state, record.exit_code) == ("finished", 0)


@pytest.mark.parametrize("torn", [False, True], ids=["between-batches", "torn-batch"])
def test_replay_interrupted_completes_next_time(uri, tmp_path, monkeypatch, torn):
    """The replay dies after its first batch of rows: before sending the second, or (torn) after
    the second batch's points were stored but not its tags (progress), as a kill between
    MLflow's two commits would leave it. The next replay completes; every point is there once."""
    job = tmp_path / "job"
    writer = rich_journal(job, new_run_id(), project_name(), bulk=700)
    writer.finish(0)
    journal = read_journal(writer.path)
    total = len(journal.history())
    adapter = adapter_for(uri)
    store_client = adapter._store().client
    real = store_client.log_batch
    batches: list[int] = []

    def die_in_second_metrics_batch(run_id, metrics=(), **kwargs):
        if metrics:
            if batches:
                if torn:
                    real(run_id, metrics=metrics, synchronous=True)
                raise ConnectionError("the network went away")
            batches.append(len(metrics))
        return real(run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(store_client, "log_batch", die_in_second_metrics_batch)
    with pytest.raises(TrackerInitError, match="the network went away"):
        adapter.replay(journal, job_path=str(job), state={})
    monkeypatch.setattr(store_client, "log_batch", real)
    (run,) = client(uri).search_runs(
        [client(uri).get_experiment_by_name(journal.project).experiment_id]
    )
    done = int(run.data.tags["aexp.replay.rows"])
    assert 0 < done < total and run.info.status == "RUNNING"
    held = sum(len(history(uri, run.info.run_id, k)) for k in run.data.metrics)
    assert held > batches[0] if torn else held == batches[0]
    result = adapter.replay(journal, job_path=str(job), state={})
    assert (result.rows, result.complete) == (total - done, True)
    assert result.state["mlflow_run_id"] == run.info.run_id
    assert_run_equals_journal(uri, journal, run.info.run_id)


_REPLAY_SCRIPT = r"""
import sys
from aexp.journal import read_journal
from aexp.trackers.mlflow import MlflowAdapter

journal = read_journal(sys.argv[1])
adapter = MlflowAdapter(sys.argv[2])
adapter._store()  # MLflow imported and the store opened before the parent starts its clock
print("ready", flush=True)
result = adapter.replay(journal, job_path=sys.argv[3], state={})
print("done", result.rows, flush=True)
"""


def test_replay_killed_at_random_moments_completes_exactly_once(uri, tmp_path):
    job = tmp_path / "job"
    writer = rich_journal(job, new_run_id(), project_name(), bulk=2500)
    writer.finish(0)
    journal = read_journal(writer.path)
    total = len(journal.history())
    expected = expected_history(journal)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    env = mlflow_env(tmp_path / "sub", dict(os.environ))
    env["PYTHONPATH"] = str(REPO)
    kills = 0
    for trial in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _REPLAY_SCRIPT, str(writer.path), uri, str(job)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        # The first kill comes early (a replay of 2,500 rows takes seconds): at least one lands.
        time.sleep(rng.uniform(0.05, 0.5 if trial == 0 else 3.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        runs = client(uri).search_runs(
            [client(uri).get_experiment_by_name(journal.project).experiment_id]
        )
        assert len(runs) <= 1, f"seed {seed}"
        if runs:  # whatever got in is a prefix of the history, each point once
            mlid = runs[0].info.run_id
            for key in runs[0].data.metrics:
                points = history(uri, mlid, key)
                assert same(points, expected[key][: len(points)]), f"seed {seed}, {key}"
    assert kills >= 1, f"seed {seed}: no replay was killed"
    runs = client(uri).search_runs(
        [client(uri).get_experiment_by_name(journal.project).experiment_id]
    )
    done = int(runs[0].data.tags.get("aexp.replay.rows", "0")) if runs else 0
    result = adapter_for(uri).replay(journal, job_path=str(job), state={})
    assert result.rows == total - done, f"seed {seed}"
    assert result.complete
    assert_run_equals_journal(uri, journal, result.state["mlflow_run_id"])
    assert len(client(uri).search_runs([result.state["experiment_id"]])) == 1


def test_replay_uploads_an_artifact_again_when_a_later_attempt_logs_it_anew(sqlite_uri, tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "result.json").write_text("first")
    w = start_journal(job, new_run_id(), "p")
    w.resume_run(attempt=1)
    w.log_artifact("result", job / "result.json", 5, job_path=str(job))
    w.finish(1)
    adapter = adapter_for(sqlite_uri)
    first = adapter.replay(read_journal(w.path), job_path=str(job), state={})
    assert first.artifacts == 1
    (job / "result.json").write_text("second!")
    w.resume_run(attempt=2)
    w.log_artifact("result", job / "result.json", 7, job_path=str(job))
    w.finish(0)
    again = adapter.replay(read_journal(w.path), job_path=str(job), state=first.state)
    assert (again.artifacts, again.complete) == (1, True)
    local = client(sqlite_uri).download_artifacts(
        first.state["mlflow_run_id"], "result/result.json", str(tmp_path)
    )
    assert Path(local).read_text() == "second!"


def test_replay_reports_a_missing_artifact_and_is_not_complete(sqlite_uri, tmp_path):
    job = tmp_path / "job"
    w = start_journal(job, new_run_id(), "p")
    w.resume_run(attempt=1)
    w.log_artifact("gone", job / "gone.txt", 1, job_path=str(job))
    w.finish(0)
    result = adapter_for(sqlite_uri).replay(read_journal(w.path), job_path=str(job), state={})
    assert (result.complete, result.artifacts, result.state["missing_artifacts"]) == (
        False, 0, ["gone"]
    )  # fmt: skip
    assert result.state["status"] == "FINISHED"


def test_replay_refuses_a_journal_without_init_or_with_bad_config(sqlite_uri, tmp_path):
    job = tmp_path / "job"
    path = journal_path(job, "noinit01")
    w = JournalWriter(path)
    w.log({"x": 1}, 0)
    adapter = adapter_for(sqlite_uri)
    with pytest.raises(TrackerUsageError, match="has no init_run event"):
        adapter.replay(read_journal(path), job_path=str(job), state={})
    w2 = start_journal(job, "badcfg01", "p", config={"lr=0.1": 1})
    with pytest.raises(TrackerUsageError, match="cannot be an MLflow param name"):
        adapter.replay(read_journal(w2.path), job_path=str(job), state={})
    assert client(sqlite_uri).get_experiment_by_name("p") is None  # nothing written


def test_replay_splits_rows_larger_than_a_request(sqlite_uri, tmp_path):
    job = tmp_path / "job"
    config = {f"c{i}": i for i in range(150)} | {"job_id": "b" * 32}  # more than one request
    w = start_journal(job, new_run_id(), "p", config=config)
    w.resume_run(attempt=1)
    wide = {f"m{i}": float(i) for i in range(2500)} | {f"s{i}": "x" * 9000 for i in range(150)}
    w.log(wide, 0)
    w.log({"m0": 5.0}, 1)
    w.finish(0)
    journal = read_journal(w.path)
    result = adapter_for(sqlite_uri).replay(journal, job_path=str(job), state={})
    mlid = result.state["mlflow_run_id"]
    run = client(sqlite_uri).get_run(mlid)
    assert len(run.data.metrics) == 2500 and result.complete
    assert history(sqlite_uri, mlid, "m0") == [(0, 0.0), (1, 5.0)]
    assert run.data.tags["aexp.last.s149"] == "x" * 8000  # cut to MLflow's tag limit
    assert run.data.tags["aexp.replay.rows"] == "2"
    assert run.data.params == {k: str(v) for k, v in config.items()}
    assert run.data.tags["aexp.exit_code"] == "0" and run.info.status == "FINISHED"


def test_pack_stays_within_mlflow_batch_limits_and_counts_rows():
    from aexp.journal import Row
    from aexp.trackers.mlflow.limits import MAX_ENTITIES_PER_BATCH, MAX_TAGS_PER_BATCH
    from aexp.trackers.mlflow.replay import axis, pack

    rows = [Row(i, {"a": 1.0, "b": 2, "c": True, "s": "t", "n": None}, 1) for i in range(600)]
    rows.insert(300, Row(None, {f"w{i}": 1.0 for i in range(1500)}, 1))
    rows.append(Row(None, {"n": None}, 1))
    steps, stamps = axis(rows, 0)
    assert steps[299:302] == [299, 300, 300]  # the step-less row takes the one after 299
    batches = list(pack(rows, 0, steps, stamps, lambda *a: a))
    progress = [done for _, _, done in batches if done is not None]
    assert progress == sorted(progress) and progress[-1] == len(rows)
    for metrics, tags, done in batches:
        assert len(metrics) + len(tags) + (done is not None) <= MAX_ENTITIES_PER_BATCH
        assert len(tags) + (done is not None) <= MAX_TAGS_PER_BATCH
    assert sum(len(m) for m, _, _ in batches) == 600 * 3 + 1500
    assert list(pack(rows, len(rows), steps, stamps, lambda *a: a)) == []
    tail = list(pack(rows, 500, steps, stamps, lambda *a: a))
    assert sum(len(m) for m, _, _ in tail) == (len(rows) - 1 - 500) * 3


def test_a_compute_node_without_mlflow_binds_and_runs_a_run_mirrored_to_mlflow(project, tmp_path):
    """backend = noop, mlflow on a node without the mlflow package: binding and the attempt only
    write the journal; mlflow is neither needed nor imported until the sync."""
    out = run_python(
        "import sys\n"
        "sys.modules['mlflow'] = None\n"
        "import aexp\n"
        "job = aexp.create_run(experiment_id='E1', hypothesis_id='H1', statepoint={'seed': 0})\n"
        "aexp.bind_tracker(job, ['noop', 'mlflow'], project='p')\n"
        "with aexp.run_lifecycle(job) as tracker:\n"
        "    tracker.log({'loss': 0.5})\n"
        "binding = aexp.get_binding(job)\n"
        "parts = binding['backends']\n"
        "print(binding['state'], sorted(parts), parts['mlflow']['error'])\n",
        Path(project.path),
    )
    assert out.strip().splitlines()[-1] == "finished ['mlflow', 'noop'] None"
