"""The adapter contract as the reference page states it, for every backend.

Each backend is used the way a reader of docs/tracker-adapters.md would use it: on its own
(init_run -> log -> log_artifact -> finish in one process, no binding, no workflow), and what it
wrote is read back with the backend's own reader (the journal for noop, the offline transaction
log for W&B). An adapter written to the page's five-method recipe works in the workflow too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import settled_log

from aexp import (
    NoopAdapter,
    ProjectNotFoundError,
    RunHandle,
    RunRecord,
    TrackerAdapter,
    bind_tracker,
    create_run,
    get_binding,
    run_lifecycle,
    run_spec,
)
from aexp.journal import journal_path, read_journal
from aexp.trackers import ADAPTERS


def _read_back(name: str, handle: RunHandle, workdir: Path) -> dict[str, Any]:
    """What the backend holds of the run: steps, rows, artifact names, exit code."""
    if name == "noop":
        journal = read_journal(handle.extra["events"])
        return {
            "steps": [row.step for row in journal.history()],
            "rows": [row.metrics for row in journal.history()],
            "artifacts": [a.name for a in journal.artifacts],
            "exit_code": journal.last_attempt.exit_code,
            "group": journal.group,
        }
    from aexp.wandb_offline import find_fragments, read_fragment

    (folder,) = [f for f in find_fragments(workdir) if f.name.endswith(handle.id)]
    settled_log(folder)
    fragment = read_fragment(folder)
    return {
        "steps": fragment.steps,
        "rows": None,
        "artifacts": fragment.artifacts,
        "exit_code": fragment.exit_code,
        "group": fragment.group,
    }


@pytest.fixture(params=["noop", "wandb"])
def backend(request, tmp_path) -> tuple[str, TrackerAdapter, Path]:
    name = request.param
    workdir = tmp_path / "job"
    workdir.mkdir()
    if name == "wandb":
        pytest.importorskip("wandb")
        from aexp import WandbAdapter

        return name, WandbAdapter(), workdir
    return name, NoopAdapter(log_root=tmp_path / "runs"), workdir


def test_an_adapter_used_on_its_own_records_the_run(backend, tmp_path):
    """The reference flow: init_run returns a handle the other methods take."""
    name, adapter, workdir = backend
    # notes are optional, and so are tags and config (W&B: offline, no account needed here).
    offline = {"offline": True} if name == "wandb" else {}
    handle = adapter.init_run(project="proj", group="H1/E1/full", workdir=workdir, **offline)
    assert re.fullmatch(r"[a-z0-9]{8}", handle.id)
    assert (handle.project, handle.group) == ("proj", "H1/E1/full")
    assert json.loads(json.dumps(handle.persistent_extra())) == handle.persistent_extra()
    adapter.log(handle, {"loss": 1.0}, step=0)
    adapter.log(handle, {"loss": 0.5}, step=1)
    result = workdir / "result.json"
    result.write_text('{"accuracy": 0.9}')
    adapter.log_artifact(handle, "result", result)
    adapter.finish(handle, exit_code=0)
    seen = _read_back(name, handle, workdir)
    assert seen["steps"] == [0, 1]
    assert seen["artifacts"] == ["result"]
    assert seen["exit_code"] == 0
    assert seen["group"] == "H1/E1/full"
    if seen["rows"] is not None:
        assert seen["rows"] == [{"loss": 1.0}, {"loss": 0.5}]


def test_run_ids_given_by_the_caller_are_kept(backend):
    name, adapter, workdir = backend
    handle = adapter.init_run(
        project="proj", group="g", workdir=workdir, run_id="abcd1234", offline=True
    )
    assert handle.id == "abcd1234"
    adapter.finish(handle)
    assert _read_back(name, handle, workdir)["exit_code"] == 0


# -- a five-method adapter, written to the reference page's recipe ----------------------------
class RecipeAdapter(TrackerAdapter):
    """Exactly the five methods of the recipe, the reference signatures (no step=, preempted=,
    run_id=, resume_run). It keeps every call in a JSON-lines file, as a REST backend keyed by
    run id would keep it on its server."""

    name = "recipe"
    calls_file: Path

    def _call(self, **call: Any) -> None:
        with open(self.calls_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(call) + "\n")

    def init_run(self, *, project, group, tags, config, notes, offline) -> RunHandle:
        handle = RunHandle(id="own-" + os.urandom(3).hex(), project=project, group=group)
        self._call(method="init_run", id=handle.id, group=group, tags=list(tags))
        return handle

    def log(self, handle, metrics) -> None:
        self._call(method="log", id=handle.id, metrics=dict(metrics))

    def log_artifact(self, handle, name, path) -> None:
        self._call(method="log_artifact", id=handle.id, name=name)

    def finish(self, handle, *, exit_code=0) -> None:
        self._call(method="finish", id=handle.id, exit_code=exit_code)

    def list_runs(self, *, project, group_prefix) -> list[RunRecord]:
        return []


def _calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_five_method_adapter_can_be_made_and_works_in_the_workflow(
    project, monkeypatch, tmp_path
):
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setattr(RecipeAdapter, "calls_file", calls, raising=False)
    monkeypatch.setitem(ADAPTERS, "recipe", RecipeAdapter)
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"condition": "full"})
    binding = bind_tracker(job, RecipeAdapter(), project="p")
    assert not calls.exists()  # binding runs nothing of the backend
    with pytest.raises(Exception, match="stop"), run_lifecycle(job) as tracker:
        tracker.log({"loss": 1.0})
        raise RuntimeError("stop")  # a failed first attempt...
    from aexp.rearming import rearm

    rearm(job)
    with run_lifecycle(job) as tracker:  # ...and a second one after a re-arm
        tracker.log({"loss": 0.5})
    seen = _calls(calls)
    assert [c["method"] for c in seen] == ["init_run", "log", "finish", "log", "finish"]
    own = seen[0]["id"]
    assert all(c["id"] == own for c in seen), "the backend's own id is kept across attempts"
    assert seen[0]["group"] == "H1/E1/full" and seen[0]["tags"] == ["H1", "E1", "full"]
    assert [c["exit_code"] for c in seen if c["method"] == "finish"] == [1, 0]
    stored = get_binding(job)
    assert stored["backends"]["recipe"]["extra"]["id"] == own
    assert stored["run_id"] == binding["run_id"] and stored["state"] == "finished"
    # The journal holds both attempts, whatever the backend reported.
    journal = read_journal(journal_path(job.path, binding["run_id"]))
    assert [row.step for row in journal.history()] == [0, 1]


# -- the library API a user reaches first ------------------------------------------------------
def test_create_run_without_a_hypothesis(project):
    job = create_run(experiment_id="E7", statepoint={"condition": "full", "seed": 1})
    assert "hypothesis_id" not in job.sp
    spec = run_spec(job)
    assert spec["group"] == "E7/full"  # one part fewer
    assert spec["tags"] == ["E7", "full"]
    assert "limina.hypothesis_id" not in spec["config"]
    assert job.doc["limina"] == {"experiment_id": "E7", "hypothesis_id": None}
    binding = bind_tracker(job, NoopAdapter(), project="p")
    assert binding["group"] == "E7/full"


def test_noop_list_runs_outside_a_project_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectNotFoundError, match="no signac project at or above"):
        NoopAdapter().list_runs(project="p")


def test_the_reference_compute_node_example_runs(project):
    """The example of the reference page, with the noop backend (W&B: test_binding)."""
    from aexp import WandbAdapter  # importable from the package root (lazily)

    assert issubclass(WandbAdapter, TrackerAdapter)
    job = create_run(
        experiment_id="E018", hypothesis_id="H012", statepoint={"condition": "full", "seed": 0}
    )
    bind_tracker(job, NoopAdapter(), project="ecg-inquiry-eval", offline=True)
    with run_lifecycle(job) as run:
        run.log({"loss": 0.1})
    assert get_binding(job)["state"] == "finished"


def test_importing_aexp_loads_no_backend_sdk(tmp_path):
    script = (
        "import sys, aexp, aexp.trackers, aexp.binding, aexp.lifecycle, aexp.workflow\n"
        "print(sorted(m for m in ('wandb', 'mlflow', 'flow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
