"""Runs as signac jobs and their binding to a tracker run: `job.doc["tracker"]`.

Real signac projects in tmp dirs; the round trip uses the real wandb client offline and reads the
offline run back with wandb's own reader (`wandb leet inspect --json`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd
from test_trackers import offline_folders, read_events, read_offline_run

from aexp import (
    BindingError,
    JobNotFoundError,
    NoopAdapter,
    ProjectNotFoundError,
    SettingsError,
    TrackerInitError,
    TrackerUsageError,
    bind_tracker,
    create_run,
    find_job,
    finish_run,
    get_adapter,
    get_binding,
    open_project,
    rearm,
    run_lifecycle,
    run_spec,
    update_binding,
)
from aexp.agent.actor import person_id
from aexp.handles import adapter_for, handle_for
from aexp.jobdoc import read_doc, update_doc
from aexp.journal import journal_path
from aexp.schema import STATES


def doc_bytes(job) -> bytes:
    return Path(job.path, "signac_job_document.json").read_bytes()


def read_back(folder: Path) -> dict:
    """An offline W&B run as wandb's own reader (`wandb leet inspect --json`) sees it; falls
    back to decoding the transaction log in the test (test_trackers.wandb_records) if the wandb
    build has no `leet` command."""
    result = run_cmd([PYTHON, "-m", "wandb", "leet", "inspect", "--json", str(folder)], folder)
    if result.returncode != 0:
        ours = read_offline_run(folder)
        return {
            **{k: ours[k] for k in ("run_id", "project", "group", "tags", "config")},
            "steps": [step for step, _ in ours["history"]],
            "exit_codes": [ours["exit_code"]],
        }
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    return {
        "run_id": run["run_id"],
        "project": run["project"],
        "group": run["run_group"],
        "tags": run["tags"],
        "config": {k: v for k, v in run["config"]["update"].items() if k != "_wandb"},
        "steps": [r["history"]["step"].get("num", 0) for r in records if r["type"] == "history"],
        "exit_codes": [r["exit"].get("exit_code", 0) for r in records if r["type"] == "exit"],
    }


def e018(seed: int = 0, **extra):
    return create_run(
        experiment_id="E018",
        hypothesis_id="H012",
        statepoint={"condition": "full", "seed": seed, **extra},
    )


# -- create_run ----------------------------------------------------------------------------------
def test_create_run_makes_the_job_with_its_limina_link(project):
    job = e018()
    assert job in project
    assert job.sp() == {
        "hypothesis_id": "H012",
        "experiment_id": "E018",
        "condition": "full",
        "seed": 0,
    }
    doc = job.doc()
    actor = doc.pop("actor")["create"]  # who created it (docs/job-document.md, "actor")
    assert doc == {
        "limina": {"experiment_id": "E018", "hypothesis_id": "H012"},
        "status": "created",
    }
    assert actor["kind"] == "person" and actor["tool"] == "aexp.create_run"
    assert actor["id"] == actor["user"] and "@" in actor["id"] and actor["session_id"] is None


def test_create_run_is_idempotent(project):
    job = e018()
    before = doc_bytes(job)
    mtime = os.stat(Path(job.path, "signac_job_document.json")).st_mtime_ns
    again = e018()
    assert again.id == job.id
    assert len(project) == 1
    assert doc_bytes(job) == before
    assert os.stat(Path(job.path, "signac_job_document.json")).st_mtime_ns == mtime  # no write
    # A job that has moved on keeps its status when the run is "created" again.
    update_doc(job, lambda doc: {"status": "complete"})
    e018()
    assert job.doc["status"] == "complete"


def test_create_run_with_an_explicit_empty_project(tmp_path):
    """An empty signac Project is falsy; it must still be the project used."""
    import signac

    proj = signac.init_project(tmp_path / "explicit")
    os.chdir(tmp_path)  # not inside any project
    job = create_run(experiment_id="E1", hypothesis_id="H1", project=proj)
    assert job in proj


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"experiment_id": "", "hypothesis_id": "H1"}, "experiment_id"),
        ({"experiment_id": "E 1", "hypothesis_id": "H1"}, "experiment_id"),
        ({"experiment_id": "E1", "hypothesis_id": "H/1"}, "hypothesis_id"),
        ({"experiment_id": "E1", "hypothesis_id": 12}, "hypothesis_id"),
        (
            {"experiment_id": "E1", "hypothesis_id": "H1", "statepoint": {"experiment_id": "E2"}},
            "experiment_id",
        ),
    ],
)
def test_create_run_rejects_bad_ids(project, kwargs, named):
    with pytest.raises(BindingError, match=named):
        create_run(**kwargs)
    assert len(project) == 0


# -- run_spec and bind_tracker -------------------------------------------------------------------
def test_run_spec_derives_group_tags_and_flat_config(project):
    job = create_run(
        experiment_id="E018",
        hypothesis_id="H012",
        statepoint={"condition": "full", "seed": 3, "opt": {"lr": 0.1, "sched": {"kind": "cos"}}},
    )
    spec = run_spec(job)
    assert spec["group"] == "H012/E018/full"
    assert spec["tags"] == ["H012", "E018", "full"]
    assert spec["config"] == {
        "condition": "full",
        "seed": 3,
        "opt.lr": 0.1,
        "opt.sched.kind": "cos",
        "job_id": job.id,
        "limina.experiment_id": "E018",
        "limina.hypothesis_id": "H012",
    }
    plain = create_run(experiment_id="E2", hypothesis_id="H2", statepoint={"seed": 1})
    assert run_spec(plain)["group"] == "H2/E2/default"


def test_bind_tracker_writes_the_binding(project):
    job = e018()
    binding = bind_tracker(
        job, NoopAdapter(), project="ecg-inquiry-eval", offline=False, tags=["sweep", "full"]
    )
    assert binding == job.doc()["tracker"]
    assert binding["backend"] == "noop"
    assert binding["project"] == "ecg-inquiry-eval"
    assert binding["group"] == "H012/E018/full"
    assert binding["url"] is None
    assert binding["offline"] is False
    assert (binding["state"], binding["attempts"], binding["last_step"]) == ("bound", 0, -1)
    assert binding["exit_code"] is None
    assert binding["bound_at"].endswith("+00:00")
    assert binding["state"] in STATES
    assert binding["backends"] == {
        "noop": {"url": None, "synced_at": None, "error": None, "options": {}}
    }
    # The run's journal starts with what every backend is told about the run.
    events = read_events(journal_path(job.path, binding["run_id"]))
    (init,) = events
    assert init["run_id"] == binding["run_id"]
    assert init["tags"] == ["H012", "E018", "full", "sweep"]  # the extra tags, deduplicated
    assert binding["tags"] == init["tags"]
    actor = {k: v for k, v in init["config"].items() if k.startswith("aexp.actor.")}
    assert actor == {"aexp.actor.kind": "person", "aexp.actor.id": person_id(),
                     "aexp.actor.tool": "aexp.bind_tracker"}  # fmt: skip
    assert init["config"] == {**run_spec(job)["config"], **actor}
    assert init["offline"] is False
    assert init["backends"] == ["noop"]
    # Everything else in the document is untouched.
    assert job.doc["limina"] == {"experiment_id": "E018", "hypothesis_id": "H012"}
    assert job.doc["status"] == "created"


def test_bind_tracker_is_idempotent(project):
    job = e018()
    first = bind_tracker(job, NoopAdapter(), project="p")
    before = doc_bytes(job)
    again = bind_tracker(job, NoopAdapter(), project="p")
    assert again == first
    assert doc_bytes(job) == before
    assert [d.name for d in Path(job.path, "tracker_log").iterdir()] == [first["run_id"]]
    assert len(read_events(journal_path(job.path, first["run_id"]))) == 1  # one init_run


@pytest.mark.wandb
def test_wandb_bind_is_idempotent_and_creates_no_folder(project):
    pytest.importorskip("wandb")
    from aexp import WandbAdapter

    job = e018()
    first = bind_tracker(job, WandbAdapter(), project="p", offline=True)
    second = bind_tracker(job, WandbAdapter(), project="p", offline=True)
    assert second["run_id"] == first["run_id"]
    assert first["tags"] == ["H012", "E018", "full"]
    assert first["backends"]["wandb"]["options"] == {}
    # Binding writes the journal's first event and nothing of W&B's (on a local file system
    # the document lock is the job directory itself: no lock file either).
    assert sorted(os.listdir(job.path)) == [
        "signac_job_document.json",
        "signac_statepoint.json",
        "tracker_log",
    ]


def test_handle_for_rebuilds_the_run_from_the_binding(project):
    job = e018()
    binding = bind_tracker(job, NoopAdapter(), project="p")
    handle = handle_for(job, json.loads(json.dumps(get_binding(job))))
    assert (handle.id, handle.url, handle.project, handle.group) == (
        binding["run_id"],
        None,
        "p",
        "H012/E018/full",
    )
    assert handle.extra["tags"] == binding["tags"]
    assert handle.extra["_config"] == run_spec(job)["config"]
    assert "_config" not in handle.persistent_extra()
    assert isinstance(adapter_for(binding), NoopAdapter)


# -- the round trip (W&B offline, the reference flow) --------------------------------------------
@pytest.mark.wandb
def test_round_trip_through_a_wandb_offline_run(project):
    pytest.importorskip("wandb")
    from aexp import WandbAdapter

    job = create_run(
        experiment_id="E018", hypothesis_id="H012", statepoint={"condition": "full", "seed": 0}
    )
    bind_tracker(job, WandbAdapter(), project="ecg-inquiry-eval", offline=True)
    with run_lifecycle(job) as run:
        run.log({"loss": 0.1})
        run.log({"loss": 0.05})
    binding = get_binding(job)
    assert binding["state"] == "finished"

    # job.doc["tracker"] -> the run: exactly one offline folder for the bound run id.
    (folder,) = offline_folders(job.path, binding["run_id"])
    seen = read_back(folder)
    assert seen["run_id"] == binding["run_id"]
    assert seen["project"] == binding["project"] == "ecg-inquiry-eval"
    assert seen["group"] == binding["group"] == "H012/E018/full"
    assert seen["tags"] == binding["tags"] == ["H012", "E018", "full"]
    config = seen["config"]
    assert config == run_spec(job)["config"]
    assert seen["steps"] == [0, 1]
    assert seen["exit_codes"] == [0]

    # The run -> the job: its config's job_id finds the job, whose state point matches.
    found = find_job(open_project(), config["job_id"])
    assert found.id == job.id
    assert found.sp["seed"] == config["seed"] and found.sp["condition"] == config["condition"]
    assert found.doc["limina"] == {
        "experiment_id": config["limina.experiment_id"],
        "hypothesis_id": config["limina.hypothesis_id"],
    }
    # And the run id alone finds it too.
    assert find_job(open_project(), seen["run_id"]).id == job.id


# -- finding jobs and projects -------------------------------------------------------------------
def test_find_job_by_id_prefix_and_run_id(project):
    jobs = [e018(seed) for seed in range(20)]  # 20 ids over 16 hex digits: two share a prefix
    bound = jobs[0]
    binding = bind_tracker(bound, NoopAdapter(), project="p")
    for job in jobs:
        assert find_job(project, job.id).id == job.id
        assert find_job(project, f"  {job.id[:12]}\n").id == job.id
    assert find_job(project, binding["run_id"]).id == bound.id

    firsts = [job.id[0] for job in jobs]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(JobNotFoundError) as info:
        find_job(project, shared)
    assert f"matches {firsts.count(shared)} jobs" in str(info.value)
    # An exact run id wins over an ambiguous job id prefix (W&B ids can look like hex).
    update_binding(bound, run_id=shared)
    assert find_job(project, shared).id == bound.id
    # One unreadable document does not hide the other jobs' runs.
    Path(jobs[-1].path, "signac_job_document.json").write_text("{torn")
    assert find_job(project, shared).id == bound.id

    for unknown in ("ffffffffffffffffffffffffffffffff0", "nosuchrun", "g"):
        with pytest.raises(JobNotFoundError, match=repr(unknown)):
            find_job(project, unknown)
    with pytest.raises(JobNotFoundError, match="empty"):
        find_job(project, "  ")


def test_find_job_without_a_workspace_directory(tmp_path):
    import shutil

    import signac

    proj = signac.init_project(tmp_path / "fresh")
    shutil.rmtree(proj.workspace)  # e.g. a clone where workspace/ was never created
    with pytest.raises(JobNotFoundError, match="abc"):
        find_job(proj, "abc")


def test_open_project_finds_the_project_from_below_and_fails_outside(project, tmp_path):
    deep = Path(project.path, "a", "b")
    deep.mkdir(parents=True)
    assert Path(open_project(deep).path) == Path(project.path)
    os.chdir(deep)
    assert Path(open_project().path) == Path(project.path)
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(ProjectNotFoundError) as info:
        open_project(outside)
    assert str(outside) in str(info.value) and ".signac/config" in str(info.value)
    os.chdir(outside)
    with pytest.raises(ProjectNotFoundError, match=re.escape(str(outside))):
        create_run(experiment_id="E1", hypothesis_id="H1")


# -- corrupted bindings and bad input leave the document unchanged -------------------------------
@pytest.mark.parametrize(
    ("tracker", "problem"),
    [
        ("not a binding", "is not an object"),
        ({"backend": "comet", "run_id": "x", "state": "bound"}, "unknown backend 'comet'"),
        ({"backend": "noop", "state": "bound"}, "has no run_id"),
        ({"backend": "noop", "run_id": "", "state": "bound"}, "has an empty run_id"),
        ({"backend": "noop", "run_id": 7, "state": "bound"}, "['run_id'] is 7, not a string"),
        ({"backend": "noop", "run_id": "x", "state": "exploded"}, "unknown state 'exploded'"),
        ({"backend": "noop", "run_id": "x", "state": "bound", "extra": []}, "'extra'"),
    ],
)
def test_corrupted_binding_is_reported_naming_the_job(project, tracker, problem):
    job = e018()
    job.doc["tracker"] = tracker  # a hand edit
    before = doc_bytes(job)
    with pytest.raises(BindingError) as info:
        get_binding(job)
    assert job.id in str(info.value) and problem in str(info.value)
    for attempt in (
        lambda: update_binding(job, state="running"),
        lambda: bind_tracker(job, NoopAdapter(), project="p"),
        lambda: finish_run(job),
        lambda: rearm(job),
    ):
        with pytest.raises(BindingError, match=job.id):
            attempt()
        assert doc_bytes(job) == before
    assert not Path(job.path, "tracker_log").exists()  # no run was created behind the error


def test_unparseable_document_is_reported_naming_the_job(project):
    job = e018()
    Path(job.path, "signac_job_document.json").write_text('{"tracker": {"backend": ')
    before = doc_bytes(job)
    with pytest.raises(BindingError, match=job.id):
        get_binding(job)
    with pytest.raises(BindingError, match="not valid JSON"):
        update_binding(job, state="running")
    Path(job.path, "signac_job_document.json").write_text("[1, 2]")
    with pytest.raises(BindingError, match="not a JSON object"):
        read_doc(job, fresh=True)
    Path(job.path, "signac_job_document.json").write_bytes(before)
    assert doc_bytes(job) == before


def test_bad_input_gives_a_clear_error_and_leaves_the_document_unchanged(project):
    job = e018()
    before = doc_bytes(job)
    with pytest.raises(TrackerInitError, match="known backends: mlflow, noop, otel, wandb"):
        bind_tracker(job, get_adapter("nope"), project="p")
    with pytest.raises(SettingsError, match="not a valid tracker project name"):
        bind_tracker(job, NoopAdapter(), project="team/project")
    with pytest.raises(SettingsError, match="empty"):
        bind_tracker(job, NoopAdapter(), project=" ")
    with pytest.raises(BindingError, match="not bound"):
        update_binding(job, state="running")
    with pytest.raises(BindingError, match="not bound"):
        finish_run(job)
    with pytest.raises(BindingError, match="nothing to re-arm"):
        rearm(job)
    assert doc_bytes(job) == before
    assert not Path(job.path, "tracker_log").exists()

    binding = bind_tracker(job, NoopAdapter(), project="p")
    before = doc_bytes(job)
    events = journal_path(job.path, binding["run_id"])
    events_before = events.read_bytes()
    adapter = NoopAdapter()
    handle = adapter.resume_run(handle_for(job, binding), workdir=job.path)
    events_before = events.read_bytes()
    with pytest.raises(TrackerUsageError, match="'weights'"):
        adapter.log(handle, {"loss": 0.1, "weights": object()})
    with pytest.raises(TrackerUsageError, match="does not exist"):
        adapter.log_artifact(handle, "model", Path(job.path, "model.pt"))
    with pytest.raises(BindingError, match="is bound, not failed"):
        rearm(job)
    with pytest.raises(BindingError, match="has not ended"):
        finish_run(job)
    with pytest.raises(JobNotFoundError):
        find_job(project, "0" * 32)
    assert doc_bytes(job) == before
    assert events.read_bytes() == events_before


def test_rearm_makes_a_failed_run_executable_again(project):
    job = e018()
    binding = bind_tracker(job, NoopAdapter(), project="p")
    with pytest.raises(ZeroDivisionError), run_lifecycle(job) as run:
        run.log({"loss": 1.0})
        1 / 0  # noqa: B018
    assert get_binding(job)["state"] == "failed"
    rearmed = rearm(job)
    assert rearmed["run_id"] == binding["run_id"]
    assert (rearmed["state"], rearmed["exit_code"], rearmed["error"]) == ("bound", None, None)
    assert job.doc["status"] == "created"
    with run_lifecycle(job) as run:
        run.log({"loss": 0.5})
    after = get_binding(job)
    assert (after["state"], after["attempts"], after["last_step"]) == ("finished", 2, 1)
    journal = journal_path(job.path, binding["run_id"])
    steps = [e.get("step") for e in read_events(journal) if e["event"] == "log"]
    assert steps == [0, 1]  # the step axis continues in the same run
