"""A backend of your own, without editing aexp: named in signac.rc by its dotted path or by an
entry point, and refused at bind when the workflow's later processes could not re-create it.

The end-to-end adapter is written as the reference page's "Writing a new adapter" says (subclass,
set `name`, five methods, SDK imported lazily) in a package of its own, put on PYTHONPATH inside
the test's temp dir (never installed into the environment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PYTHON, copy_template, new_runs, run_cmd, set_rc

from aexp import bind_tracker, create_run
from aexp.errors import SettingsError, TrackerInitError
from aexp.settings import load_settings
from aexp.trackers import ADAPTERS, NoopAdapter, TrackerAdapter, get_adapter
from aexp.trackers.names import dotted_path

# An in-house store: one JSON file per run under $INHOUSE_STORE. Five methods, nothing else.
INHOUSE = '''
"""An in-house run store for aexp (five methods, as the reference page says)."""

import json
import os
from pathlib import Path

from aexp.trackers import RunHandle, RunRecord, TrackerAdapter, TrackerInitError


class StoreAdapter(TrackerAdapter):
    name = "inhouse"

    def __init__(self):
        root = os.environ.get("INHOUSE_STORE")
        if not root:
            raise TrackerInitError("set INHOUSE_STORE to the store's directory")
        self.root = Path(root)

    def _file(self, run_id):
        return self.root / f"{run_id}.json"

    def _load(self, run_id):
        return json.loads(self._file(run_id).read_text())

    def _save(self, run_id, data):
        self.root.mkdir(parents=True, exist_ok=True)
        self._file(run_id).write_text(json.dumps(data))

    def init_run(self, *, project, group, tags, config, notes, offline, run_id=None, **_):
        data = {"project": project, "group": group, "tags": list(tags), "config": config,
                "rows": [], "artifacts": [], "finished": []}
        self._save(run_id, data)
        return RunHandle(id=run_id, project=project, group=group)

    def log(self, handle, metrics):
        data = self._load(handle.id)
        data["rows"].append(dict(metrics))
        self._save(handle.id, data)

    def log_artifact(self, handle, name, path):
        data = self._load(handle.id)
        data["artifacts"].append(name)
        self._save(handle.id, data)

    def finish(self, handle, *, exit_code=0):
        data = self._load(handle.id)
        data["finished"].append(exit_code)
        self._save(handle.id, data)

    def list_runs(self, *, project, group_prefix=""):
        out = []
        for path in sorted(self.root.glob("*.json")):
            data = json.loads(path.read_text())
            if data["project"] == project and data["group"].startswith(group_prefix):
                state = "finished" if data["finished"][-1:] == [0] else "running"
                out.append(RunRecord(id=path.stem, project=project, group=data["group"],
                                     state=state))
        return out
'''


def _package(where: Path) -> Path:
    (where / "inhouse").mkdir(parents=True)
    (where / "inhouse" / "__init__.py").write_text("")
    (where / "inhouse" / "trackers.py").write_text(textwrap.dedent(INHOUSE))
    return where


@pytest.mark.parametrize(
    "spelling", ["inhouse.trackers:StoreAdapter", "inhouse.trackers.StoreAdapter"]
)
def test_a_page_style_adapter_named_by_dotted_path_runs_a_sweep(
    tmp_path: Path, spelling: str
) -> None:
    packages = _package(tmp_path / "site")
    store = tmp_path / "store"
    root = copy_template(tmp_path / "project")
    set_rc(root, "tracker", "backend", f"{spelling}, otel")
    set_rc(root, "tracker", "offline", "false")
    set_rc(root, "otel", "endpoint", "none")
    env = {**os.environ, "PYTHONPATH": str(packages), "INHOUSE_STORE": str(store)}
    jobs = new_runs(root, env, "condition=a|b,seed=0,epochs=3")
    ran = run_cmd([PYTHON, "project.py", "run"], root, env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    synced = run_cmd([PYTHON, "-m", "aexp.cli", "sync-offline"], root, env, timeout=300)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    for job in jobs:
        binding = json.loads((root / "workspace" / job / "signac_job_document.json").read_text())[
            "tracker"
        ]
        assert list(binding["backends"]) == [spelling, "otel"]
        assert binding["state"] == "finished" and binding["synced_at"]
        data = json.loads((store / f"{binding['run_id']}.json").read_text())
        assert data["group"] == binding["group"] and len(data["rows"]) == 3
        assert data["finished"] == [0] and data["artifacts"] == ["result.json"]
    listed = run_cmd(
        [PYTHON, "-m", "aexp.cli", "list-runs", "--backend", spelling, "--project", "aexp-demo"],
        root,
        env,
    )
    assert listed.returncode == 0, listed.stderr
    assert all(_doc_run(root, job) in listed.stdout for job in jobs)


def _doc_run(root: Path, job: str) -> str:
    doc = json.loads((root / "workspace" / job / "signac_job_document.json").read_text())
    return doc["tracker"]["run_id"]


def test_an_entry_point_names_a_backend(tmp_path: Path) -> None:
    packages = _package(tmp_path / "site")
    dist = packages / "inhouse-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: inhouse\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[aexp.trackers]\ninhouse = inhouse.trackers:StoreAdapter\n"
    )
    code = (
        "from aexp.trackers import ADAPTERS; from aexp.settings import load_settings; "
        "import sys; s = load_settings(sys.argv[1]); cls = ADAPTERS['inhouse']; "
        "print(s.backends, 'inhouse' in list(ADAPTERS), cls.name, cls.__qualname__)"
    )
    root = tmp_path / "p"
    root.mkdir()
    (root / "signac.rc").write_text("[tracker]\nbackend = inhouse\n")
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        env={**os.environ, "PYTHONPATH": str(packages)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["('inhouse',)", "True", "inhouse", "StoreAdapter"]


# -- refused at bind: what later processes could not re-create ---------------------------------
class ImportableAdapter(NoopAdapter):
    """A module-level class: any process can import it as tests.test_external_backends..."""

    name = "importable"


class FakeWandb(NoopAdapter):
    name = "wandb"


def test_an_adapter_defined_in_a_function_is_refused_at_bind(project) -> None:
    class Local(NoopAdapter):
        name = "local"

    job = create_run(experiment_id="E1", statepoint={"condition": "a"})
    with pytest.raises(TrackerInitError) as info:
        bind_tracker(job, Local(), project="p")
    message = str(info.value)
    assert "inside a function" in message and "could not re-create it" in message
    assert "\n" not in message
    assert "tracker" not in job.doc, "nothing bound"


def test_an_adapter_taking_a_registered_name_is_refused_at_bind(project) -> None:
    job = create_run(experiment_id="E1", statepoint={"condition": "a"})
    with pytest.raises(
        TrackerInitError,
        match=r"its name 'wandb' is the backend aexp\.trackers\.wandb\.WandbAdapter",
    ):
        bind_tracker(job, FakeWandb(), project="p")
    assert "tracker" not in job.doc


def test_an_importable_adapter_with_an_unregistered_name_binds_under_its_path(project) -> None:
    job = create_run(experiment_id="E1", statepoint={"condition": "a"})
    binding = bind_tracker(job, ImportableAdapter(), project="p")
    (name,) = binding["backends"]
    assert name == f"{__name__}:ImportableAdapter"
    # Another process (here: the registry afresh) finds the same class by that name.
    assert ADAPTERS[name].__mro__[1] is ImportableAdapter or ADAPTERS[name] is ImportableAdapter


def test_our_own_adapters_still_bind_as_before(project) -> None:
    job = create_run(experiment_id="E1", statepoint={"condition": "a"})
    binding = bind_tracker(job, NoopAdapter(), project="p")
    assert list(binding["backends"]) == ["noop"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wandb", None),
        ("a.b:C", "a.b:C"),
        ("a.b.C", "a.b:C"),
        ("pkg.mod:Outer.Inner", "pkg.mod:Outer.Inner"),
        ("noop", None),
        ("a:", None),
        ("1pkg.mod:C", None),
    ],
)
def test_dotted_paths_are_recognised_by_their_form(name: str, expected: str | None) -> None:
    assert dotted_path(name) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("comet", "unknown tracker backend 'comet'"),
        ("noop, nosuch", "unknown tracker backend 'nosuch'"),
        ("wandb:", "unknown tracker backend 'wandb:'"),
    ],
)
def test_settings_refuse_an_unknown_backend_in_one_sentence(
    tmp_path: Path, value: str, fragment: str
) -> None:
    (tmp_path / "signac.rc").write_text(f"[tracker]\nbackend = {value}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unimportable_dotted_path_fails_at_use_in_one_sentence() -> None:
    with pytest.raises(TrackerInitError, match=r"cannot be imported here \(ModuleNotFoundError"):
        get_adapter("nosuchpkg.trackers:Nope")
    with pytest.raises(TrackerInitError, match="not a TrackerAdapter subclass"):
        get_adapter("json:JSONDecoder")


def test_settings_check_backend_names_without_importing_any_adapter(tmp_path: Path) -> None:
    (tmp_path / "signac.rc").write_text(
        "[tracker]\nbackend = wandb, mlflow, otel, my.pkg:Adapter\n"
    )
    code = (
        "import sys; from aexp.settings import load_settings; s = load_settings(sys.argv[1]); "
        "print(s.backends); "
        "print(sorted(m for m in sys.modules if m.startswith('aexp.trackers.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    backends, modules = out.stdout.splitlines()
    assert backends == "('wandb', 'mlflow', 'otel', 'my.pkg:Adapter')"
    assert modules == "['aexp.trackers.base', 'aexp.trackers.names', 'aexp.trackers.registry']"


def test_registry_classes_are_adapters() -> None:
    for name in ADAPTERS:
        assert issubclass(ADAPTERS[name], TrackerAdapter) and ADAPTERS[name].name == name
