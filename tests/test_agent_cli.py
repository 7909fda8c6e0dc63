"""Who did what, the JSON contract and plans, through the command line: every create, launch,
rerun, rearm and remove records its actor (a person, or an agent by its session variable), and
every reporting command's `--json` follows its schema.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, copy_template, run_cmd, set_rc, snapshot

from aexp.agent.actor import person_id
from aexp.contract import SCHEMAS, check, schema_of

SESSION = "5f0c2d8e-0000-4000-8000-00000000abcd"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = copy_template(tmp_path / "project")
    set_rc(root, "tracker", "backend", "noop")
    return root


def aexp(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cmd([PYTHON, "-m", "aexp.cli", *args], root, env=env)


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def new_run(root: Path, sp: str, *more: str, env: dict[str, str] | None = None) -> str:
    """`aexp new-run --experiment E1 --hypothesis H1 --sp SP MORE...`: its output."""
    args = ["new-run", "--experiment", "E1", "--hypothesis", "H1", "--sp", sp, *more]
    return ok(aexp(root, *args, env=env))


def new_jobs(root: Path, sp: str) -> list[str]:
    """The ids of the jobs `new_run` made."""
    return new_run(root, sp).split()


def doc_of(root: Path, job: str) -> dict[str, Any]:
    return json.loads((root / "workspace" / job / "signac_job_document.json").read_text())


def log_of(root: Path) -> list[dict[str, Any]]:
    path = root / ".aexp" / "actions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_schema_is_a_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    for name in SCHEMAS:
        Draft202012Validator.check_schema(schema_of(name))


def test_a_person_and_an_agent_are_told_apart(root: Path) -> None:
    person = json.loads(new_run(root, "seed=0", "--json"))
    check(person)
    (job,) = [j["job_id"] for j in person["jobs"]]
    created = doc_of(root, job)["actor"]["create"]
    assert created == {**person["actor"], "at": created["at"]}
    assert (created["kind"], created["id"], created["session_id"], created["tool"]) == (
        "person", person_id(), None, "aexp new-run"
    )  # fmt: skip

    agent_env = {**os.environ, "CLAUDE_CODE_SESSION_ID": SESSION}
    new_run(root, "seed=1", env=agent_env)
    (agent_job,) = [j for j in os.listdir(root / "workspace") if j != job]
    created = doc_of(root, agent_job)["actor"]["create"]
    assert (created["kind"], created["id"], created["session_id"]) == (
        "agent",
        "claude-code",
        SESSION,
    )
    assert created["user"] == person_id()

    # [agent] session_env names another variable: Claude Code's is no longer looked at.
    set_rc(root, "agent", "session_env", "MY_AGENT_SESSION")
    new_run(root, "seed=2", env=agent_env)
    new_run(root, "seed=3", env={**agent_env, "MY_AGENT_SESSION": "s-42"})
    kinds = {}
    for name in os.listdir(root / "workspace"):
        made = doc_of(root, name)["actor"]["create"]
        kinds[made["session_id"]] = (made["kind"], made["id"])
    assert kinds == {None: ("person", person_id()), SESSION: ("agent", "claude-code"),
                     "s-42": ("agent", "my_agent_session")}  # fmt: skip
    assert [e["action"] for e in log_of(root)] == ["create"] * 4


def test_launch_rearm_rerun_remove_are_recorded(root: Path) -> None:
    jobs = new_jobs(root, "seed=0..1,fail_at_epoch=0,epochs=2")
    agent_env = {**os.environ, "CLAUDE_CODE_SESSION_ID": SESSION}
    assert run_cmd([PYTHON, "project.py", "run"], root, env=agent_env).returncode == 1
    for job in jobs:
        launch = doc_of(root, job)["actor"]["launch"]
        assert (launch["kind"], launch["session_id"], launch["tool"]) == (
            "agent", SESSION, "python project.py run"
        )  # fmt: skip
        assert launch["run_id"] == doc_of(root, job)["tracker"]["run_id"] and launch["attempt"] == 1
        started = doc_of(root, job)["tracker"]["started_by"]
        assert started["session_id"] == SESSION
    rearmed = json.loads(ok(aexp(root, "rearm", jobs[0], "--json")))
    check(rearmed)
    assert doc_of(root, jobs[0])["actor"]["rearm"]["tool"] == "aexp rearm"
    rerun = json.loads(ok(aexp(root, "rerun", jobs[1], "--json")))
    check(rerun)
    assert doc_of(root, jobs[1])["actor"]["rerun"]["kind"] == "person"
    # A launcher's actor, handed down, is what the attempt records.
    handed = {
        "kind": "agent",
        "id": "other",
        "session_id": "s-9",
        "tool": "mcp:run_here",
        "user": "u@h",
    }
    run_cmd(
        [PYTHON, "project.py", "run", "-j", jobs[1]],
        root,
        env={**os.environ, "AEXP_ACTOR": json.dumps(handed)},
    )
    launch = doc_of(root, jobs[1])["actor"]["launch"]
    assert {k: launch[k] for k in handed} == handed
    removed = json.loads(ok(aexp(root, "remove", jobs[0], "--yes", "--json", env=agent_env)))
    check(removed)
    assert removed["removed"][0]["job_id"] == jobs[0]
    log = log_of(root)
    assert [e["action"] for e in log] == ["create", "rearm", "rerun", "remove"]
    assert log[-1]["actor"]["session_id"] == SESSION and log[-1]["jobs"] == [jobs[0]]
    assert log[-1]["runs"] == {jobs[0]: removed["removed"][0]["run_id"]}


def test_status_json_and_text(root: Path) -> None:
    jobs = new_run(root, "seed=0..2,epochs=2").split()
    status = json.loads(ok(aexp(root, "status", "--json")))
    check(status)
    assert status["counts"]["unbound"] == 3 and [j["job_id"] for j in status["jobs"]] == sorted(
        jobs
    )
    run_cmd([PYTHON, "project.py", "run", "-j", jobs[0]], root)
    changes = json.loads(ok(aexp(root, "status", "--json", "--since", status["cursor"])))
    check(changes)
    assert [(c["job_id"], c["change"]) for c in changes["changes"]] == [(jobs[0], "finished")]
    text = ok(aexp(root, "status"))
    assert f"{jobs[0]}  finished" in text and "3 jobs: 2 unbound, 1 finished" in text
    some = json.loads(ok(aexp(root, "status", "--json", "--state", "unbound", "--limit", "1")))
    check(some)
    assert [j["state"] for j in some["jobs"]] == ["unbound"] and some["omitted"] == 1
    assert some["counts"]["finished"] == 1 and some["total"] == 3  # the whole project's
    text = ok(aexp(root, "status", "--since", changes["cursor"]))
    assert text.startswith("0 changed of 3 jobs; next: aexp status --since c1-")
    bad = aexp(root, "status", "--since", "c1-0000000000000000")
    assert (
        bad.returncode == 2
        and "unknown or has expired" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_plan_then_apply_and_every_document_checks(root: Path) -> None:
    jobs = new_jobs(root, "seed=0..1,fail_at_epoch=0,epochs=2")
    summary = run_cmd([PYTHON, "project.py", "run", "--json"], root)
    assert summary.returncode == 1
    pass_doc = json.loads(summary.stdout.splitlines()[-1])  # the last line of stdout
    check(pass_doc)
    assert sorted(pass_doc["failed"]) == sorted(jobs) and pass_doc["exit_code"] == 1
    assert "2 failed" in summary.stderr  # the two lines go to stderr then
    before = snapshot(root / "workspace")
    plan = json.loads(ok(aexp(root, "rearm", jobs[0], "--plan", "--json")))
    check(plan)
    text = ok(aexp(root, "rerun", jobs[1], "--plan", "--force"))
    assert text.startswith("plan: run again as a new run") and "aexp apply p1-" in text
    assert snapshot(root / "workspace") == before
    done = json.loads(ok(aexp(root, "apply", plan["token"])))
    check(done)
    assert (
        done["schema"] == "aexp.rearm/1"
        and doc_of(root, jobs[0])["actor"]["rearm"]["tool"] == "aexp apply rearm"
    )
    again = aexp(root, "apply", plan["token"])
    assert again.returncode == 2 and "already used" in again.stderr
    why = json.loads(ok(aexp(root, "diagnose", jobs[1], "--json")))
    check(why)
    assert why["state"] == "failed" and why["attempts"][0]["ended"] == "ended"
    assert "RuntimeError: injected failure at epoch 0" in why["why"]
    assert any("injected failure" in line for line in why["error_log"]["tail"])
    shown = json.loads(ok(aexp(root, "show", jobs[1], "--json")))
    check(shown)
    runs = json.loads(ok(aexp(root, "runs", "--json")))
    check(runs)
    sync = json.loads(ok(aexp(root, "sync-offline", "--dry-run", "--json")))
    check(sync)
    made = json.loads(new_run(root, "seed=7", "--dry-run", "--json"))
    check(made)
    assert made["dry_run"] and made["actor"] is None and made["jobs"][0]["created"]


def test_the_actor_reaches_mlflows_tags(root: Path, tmp_path: Path, empty_store: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from mlflow_server import copy_store

    uri = copy_store(empty_store, tmp_path / "store" / "mlflow.db")
    set_rc(root, "tracker", "backend", "mlflow")
    set_rc(root, "mlflow", "tracking_uri", uri)
    agent_env = {**os.environ, "CLAUDE_CODE_SESSION_ID": SESSION}
    (job,) = new_run(root, "epochs=2").split()
    assert (
        run_cmd(
            [PYTHON, "project.py", "run", "-o", "init_tracker", "execute"], root, env=agent_env
        ).returncode
        == 0
    )
    synced = json.loads(ok(aexp(root, "sync-offline", "--json")))
    check(synced)
    assert synced["backends"]["mlflow"]["replayed"] == 1
    assert [e["action"] for e in log_of(root)][-1] == "sync"
    (run,) = MlflowClient(tracking_uri=uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri=uri).search_experiments()]
    )
    tags = run.data.tags
    assert tags["aexp.actor.kind"] == "agent" and tags["aexp.actor.session_id"] == SESSION
    assert tags["aexp.actor.tool"] == "python project.py run" and tags["aexp.job_id"] == job


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_jobs_per_call", "unlimited", None),
        ("max_jobs_per_call", "7", 7),
        ("gpu_hours_per_day", "0", 0.0),
        ("cpu_hours_per_day", "12.5", 12.5),
        ("session_env", "MY_SESSION", "MY_SESSION"),
        ("plan_ttl", "30", 30.0),
    ],
)
def test_agent_settings_are_read(tmp_path: Path, key: str, value: str, expected: Any) -> None:
    from aexp.settings import load_settings

    (tmp_path / "signac.rc").write_text(f"[agent]\n{key} = {value}\n")
    assert getattr(load_settings(tmp_path).agent, key) == expected


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("max_jobs_per_call = -1", "must be a whole number of at least 0 or unlimited, not '-1'"),
        ("max_jobs_per_call = 1.5", "must be a whole number of at least 0 or unlimited"),
        ("gpu_hours_per_day = nan", "must be a number of at least 0 or unlimited, not 'nan'"),
        ("session_env = not a name", "must name an environment variable, not 'not a name'"),
        ("plan_ttl = 0", "must be positive"),
        ("max_job_per_call = 5", "is not a setting; the [agent] keys are session_env,"),
    ],
)
def test_bad_agent_settings_are_one_sentence(tmp_path: Path, text: str, said: str) -> None:
    from aexp.errors import SettingsError
    from aexp.settings import load_settings

    (tmp_path / "signac.rc").write_text(f"[agent]\n{text}\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(tmp_path)
    assert said in str(refused.value) and str(refused.value).startswith("[agent] ")


def test_the_examples_of_the_contracts_page_follow_their_schemas() -> None:
    import re

    page = (Path(__file__).resolve().parents[1] / "docs" / "json.md").read_text()
    examples = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", page, re.S)]
    assert {e["schema"] for e in examples} == {"aexp.status/1", "aexp.status.changes/1"}
    for example in examples:
        check(example)
