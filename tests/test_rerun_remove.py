"""Cleaning and re-running a sweep, and naming its groups: `aexp rerun`, `aexp remove`,
`[tracker] group_by`, on real template projects run by the real workflow (`python project.py
run`), with the real wandb client and a real `wandb sync` against the loopback W&B stand-in
where the new run's upload matters.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import AEXP, aexp_cli, bad, ok
from conftest import PYTHON, run_cmd, set_rc

import aexp
from aexp.errors import SettingsError
from aexp.settings import load_settings
from aexp.spec import spec_of

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))


def doc(job) -> dict:
    return json.loads(Path(job.path, "signac_job_document.json").read_text())


def cli(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return aexp_cli(*args, cwd=root, stdin=stdin)


def refused(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aexp: error: "), result.stderr
    assert fragment in lines[0], lines[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal(job, run_id: str) -> list[dict]:
    path = Path(job.path, "tracker_log", run_id, "events.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def hold_claim(job) -> subprocess.Popen:
    """Another process holding the job's claim (as an executing attempt does) until killed."""
    code = (
        "import sys, time\n"
        "from aexp.jobdoc import JobDir\nfrom aexp.joblock import job_claim\n"
        f"with job_claim(JobDir({job.id!r}, {job.path!r})):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def make(condition: str = "full", seed: int = 0, **extra: object):
    return aexp.create_run(
        experiment_id="E018",
        hypothesis_id="H012",
        statepoint={"condition": condition, "seed": seed, "epochs": 3, **extra},
    )


# -- rerun --------------------------------------------------------------------------------------
def test_rerun_after_fixing_the_experiment_is_a_new_run_and_keeps_the_old_one(
    template: Path,
) -> None:
    set_rc(template, "tracker", "backend", "noop")
    job = make(fail_at_epoch=1)
    failed = run_cmd([PYTHON, "project.py", "run"], template)
    assert failed.returncode == 1, failed.stderr  # an experiment failed in the pass
    old = doc(job)["tracker"]
    assert old["state"] == "failed"
    assert Path(job.path, "checkpoint.0.json").exists() and Path(job.path, "error.log").exists()
    old_journal = Path(job.path, "tracker_log", old["run_id"], "events.jsonl")
    old_hash = sha(old_journal)

    # The experiment is fixed: it no longer honours fail_at_epoch.
    experiment = template / "experiment.py"
    text = experiment.read_text()
    experiment.write_text(text.replace('if sp.get("fail_at_epoch") == epoch:', "if False:"))
    said = ok(cli(template, "rerun", job.id[:8]))
    new = doc(job)["tracker"]
    assert new["run_id"] != old["run_id"]
    assert said.strip() == (
        f"rerun {job.id}: new run {new['run_id']} (bound, eligible for execute); previous run "
        f"{old['run_id']} (failed, exit code 1) kept in "
        f"workspace/{job.id}/tracker_log/{old['run_id']}; moved checkpoint.0.json, error.log there"
    )
    assert new["state"] == "bound" and new["attempts"] == 0 and new["summary"] == {}
    assert (new["backend"], new["project"], new["group"], new["tags"]) == (
        old["backend"], old["project"], old["group"], old["tags"],
    )  # fmt: skip
    assert doc(job)["status"] == "created"
    (previous,) = new["previous_runs"]
    assert previous["run_id"] == old["run_id"] and previous["state"] == "failed"
    assert previous["exit_code"] == 1 and previous["attempts"] == 1
    assert previous["finished_at"] == old["finished_at"] and previous["summary"] == old["summary"]
    assert previous["backends"] == {"noop": {"url": None, "synced_at": None}}
    # The old run's files are its own: journal untouched, checkpoint and traceback beside it.
    assert sha(old_journal) == old_hash
    kept = Path(job.path, "tracker_log", old["run_id"])
    assert (kept / "checkpoint.0.json").exists() and "injected failure" in (
        kept / "error.log"
    ).read_text()
    assert not Path(job.path, "checkpoint.0.json").exists()
    assert [e["event"] for e in journal(job, new["run_id"])] == ["init_run"]

    # The new run runs from scratch (no checkpoint to resume), its own step axis from 0.
    run_cmd([PYTHON, "project.py", "run"], template, check=True)
    new = doc(job)["tracker"]
    assert new["state"] == "finished" and new["attempts"] == 1
    steps = [e["step"] for e in journal(job, new["run_id"]) if e["event"] == "log"]
    assert steps == [0, 1, 2]
    assert sha(old_journal) == old_hash
    # Results show the new run; the old one stays in the binding's record.
    rows = json.loads(ok(cli(template, "runs", "--json", "--metrics", "loss:count")))["jobs"]
    assert [(r["run_id"], r["state"], r["metrics"]) for r in rows] == [
        (new["run_id"], "finished", {"loss:count": 3})
    ]


def test_rerun_refuses_what_cannot_be_rerun_and_changes_nothing(template: Path) -> None:
    set_rc(template, "tracker", "backend", "noop")
    done, bound, unbound = make(seed=0), make(seed=1), make(seed=2)
    run_cmd([PYTHON, "project.py", "run", "-j", done.id], template, check=True)
    aexp.bind_tracker(bound, "noop", project="demo")
    before = {job.id: doc(job) for job in (done, bound, unbound)}
    refused(cli(template, "rerun", bound.id), "has not run yet")
    refused(cli(template, "rerun", unbound.id), "is not bound to a run yet")
    refused(cli(template, "rerun", done.id, bound.id), "has not run yet")  # all checked first
    holder = hold_claim(done)
    try:
        refused(cli(template, "rerun", done.id), "is being worked on by another process (pid")
    finally:
        holder.kill()
        holder.wait()
    assert {job.id: doc(job) for job in (done, bound, unbound)} == before


@pytest.mark.wandb
def test_a_rerun_w_and_b_run_syncs_as_a_run_of_its_own(template: Path, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    from wandb_server import FakeWandbServer, wandb_env

    job = make()
    run_cmd([PYTHON, "project.py", "run"], template, check=True)
    with FakeWandbServer() as server:
        env = {**os.environ, **wandb_env(tmp_path, server.base_url)}
        ok(run_cmd([AEXP, "sync-offline"], template, env=env))
        old = doc(job)["tracker"]
        assert old["synced_at"] and old["url"]
        first = server.runs()[old["run_id"]]
        ok(cli(template, "rerun", job.id))
        run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker", "execute", "finish"],
                template, check=True)  # fmt: skip
        new = doc(job)["tracker"]
        assert new["state"] == "finished" and new["run_id"] != old["run_id"]
        (previous,) = new["previous_runs"]
        assert previous["url"] == old["url"] and previous["synced_at"] == old["synced_at"]
        assert previous["backends"]["wandb"]["url"] == old["url"]
        folders = sorted(p.name for p in Path(job.path, "wandb").glob("offline-run-*"))
        assert [f.rsplit("-", 1)[1] for f in folders].count(new["run_id"]) == 1
        server.clear()
        ok(run_cmd([AEXP, "sync-offline"], template, env=env))
        runs = server.runs()
        assert set(runs) == {new["run_id"]}  # only the new run was sent, as a run of its own
        assert [row["_step"] for row in runs[new["run_id"]]["history"]] == [0, 1, 2]
        assert runs[new["run_id"]]["group"] == first["group"] == "H012/E018/full"
        assert runs[new["run_id"]]["config"]["job_id"] == job.id
        synced = doc(job)["tracker"]
        assert synced["synced_at"] and synced["url"].endswith(f"/runs/{new['run_id']}")


# -- remove -------------------------------------------------------------------------------------
def test_remove_asks_lists_the_runs_and_uses_signacs_removal(template: Path) -> None:
    set_rc(template, "tracker", "backend", "noop")
    jobs = [make(seed=s) for s in range(4)]
    run_cmd([PYTHON, "project.py", "run", "-j", jobs[0].id, jobs[1].id], template, check=True)
    runs = {job.id: doc(job)["tracker"]["run_id"] for job in jobs[:2]}

    declined = cli(template, "remove", "--where", "seed=0..1", stdin="n\n")
    assert declined.returncode == 0, "declining is not an error"
    assert "Remove these 2 jobs, with their runs and files? [y/N] nothing removed." in (
        declined.stderr
    )
    assert all(Path(job.path).is_dir() for job in jobs)

    done = cli(template, "remove", "--where", "seed=0..1", stdin="y\n")
    out = ok(done)
    table, removed = out.split("\nremoved ", 1)
    assert table.splitlines()[0].split() == ["JOB", "STATE", "RUN", "GROUP"]
    assert sorted(("removed " + removed).splitlines()) == sorted(
        f"removed {job.id} (run {runs[job.id]}, finished)" for job in jobs[:2]
    )
    assert "removed 2 of 2 jobs; runs already synced stay" in done.stderr
    assert not Path(jobs[0].path).exists() and not Path(jobs[1].path).exists()
    project = aexp.open_project(template)
    assert sorted(job.id for job in project) == sorted(job.id for job in jobs[2:])

    # ids from stdin: there is no one to ask, so --yes is required
    refused(cli(template, "remove", "-", stdin=jobs[2].id), "pass --yes")
    assert Path(jobs[2].path).is_dir()
    said = ok(cli(template, "remove", "-", "--yes", stdin=jobs[2].id))
    assert said.splitlines()[-1] == f"removed {jobs[2].id} (no run)"
    refused(cli(template, "remove"), "name the jobs to remove")
    refused(cli(template, "remove", "--all", "--where", "seed=3"), "--all removes every job")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("{broken", "is not valid JSON"),
        ("", "is empty"),
        (None, "is missing"),
        ('{"seed": 99}', "does not hash to the job's id"),
    ],
    ids=["torn", "empty", "missing", "edited"],
)
def test_remove_of_a_named_job_whose_state_point_is_damaged_says_so_and_keeps_it(
    template: Path, damage: str | None, said: str
) -> None:
    """Named by id, a job signac cannot open is not "no match" (exit 0, its run and files left
    without a word): the command ends with the damage and its repair, and removes nothing, not
    even the sound jobs named with it; repaired, it is removed."""
    set_rc(template, "tracker", "backend", "noop")
    damaged, sound = make(seed=0), make(seed=1)
    run_cmd([PYTHON, "project.py", "run"], template, check=True)
    statepoint = Path(damaged.path, "signac_statepoint.json")
    if damage is None:
        statepoint.unlink()
    else:
        statepoint.write_text(damage)

    refused(
        cli(template, "remove", "--yes", "--force", damaged.id, sound.id),
        f"job {damaged.id}: its signac_statepoint.json {said}",
    )
    assert Path(damaged.path, "tracker_log").is_dir() and Path(sound.path).is_dir()

    ok(cli(template, "repair", damaged.id))
    removed = ok(cli(template, "remove", "--yes", "--force", damaged.id))
    assert removed.splitlines()[-1].startswith(f"removed {damaged.id} (run ")
    assert not Path(damaged.path).exists() and Path(sound.path).is_dir()


def test_remove_refuses_a_job_another_process_works_on(template: Path) -> None:
    set_rc(template, "tracker", "backend", "noop")
    jobs = [make(seed=s) for s in range(2)]
    holder = hold_claim(jobs[1])
    try:
        refused(
            cli(template, "remove", "--all", "--yes"),
            f"job {jobs[1].id} is being worked on by another process (pid {holder.pid}",
        )
    finally:
        holder.kill()
        holder.wait()
    assert all(Path(job.path).is_dir() for job in jobs)  # nothing removed, not even the free one
    ok(cli(template, "remove", "--all", "--yes"))
    assert not any(Path(job.path).exists() for job in jobs)


def _write(job, document: dict) -> None:
    Path(job.path, "signac_job_document.json").write_text(json.dumps(document))


def test_remove_refuses_runs_that_exist_nowhere_else_unless_forced_and_names_them(
    template: Path,
) -> None:
    # MLflow is fed at sync: a finished run that was never synced exists in its job alone.
    set_rc(template, "tracker", "backend", "mlflow")
    jobs = [make(seed=s) for s in range(3)]
    run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker", "execute", "finish"], template,
            check=True)  # fmt: skip
    runs = {job.id: doc(job)["tracker"]["run_id"] for job in jobs}
    synced = doc(jobs[2])
    synced["tracker"]["synced_at"] = "2026-01-01T00:00:00+00:00"
    synced["tracker"]["backends"]["mlflow"]["synced_at"] = "2026-01-01T00:00:00+00:00"
    _write(jobs[2], synced)
    unsynced = [f"job {job.id} run {runs[job.id]} (not on mlflow)" for job in jobs[:2]]

    refused(cli(template, "remove", "--all", "--yes"), "2 run(s) exist only in their jobs")
    said = cli(template, "remove", "--all", "--yes").stderr
    assert all(run in said for run in unsynced) and runs[jobs[2].id] not in said, said
    assert all(Path(job.path).is_dir() for job in jobs), "nothing removed"
    ok(cli(template, "remove", jobs[2].id, "--yes"))  # a synced run needs no --force
    assert not Path(jobs[2].path).exists()

    declined = cli(template, "remove", "--all", "--force", stdin="n\n")
    assert declined.returncode == 0 and "nothing removed." in declined.stderr
    assert all(run in declined.stderr for run in unsynced), "the prompt names them"
    assert all(Path(job.path).is_dir() for job in jobs[:2])

    done = cli(template, "remove", "--all", "--force", "--yes")
    ok(done)
    assert "deleted for good, never synced:" in done.stderr
    assert all(run in done.stderr for run in unsynced), done.stderr
    assert not any(Path(job.path).exists() for job in jobs)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: "{" + json.dumps(d)[:50], id="truncated"),
        pytest.param(
            lambda d: {**d, "tracker": {**d["tracker"], "attempts": "x"}}, id="wrong-type"
        ),
        pytest.param(lambda d: {"status": "created"}, id="killed-before-first-record"),
        pytest.param(lambda d: {**d, "tracker": None}, id="binding-gone"),
    ],
)
@pytest.mark.parametrize("binder", ["execute", "init_tracker"])
def test_remove_judges_what_exists_elsewhere_by_the_runs_journals_not_the_document(
    template: Path, damage, binder: str
) -> None:
    """A run is in its journal whatever its document says (damaged, or never written because
    its first attempt was killed first): removing the job would delete it for good. Whether
    the first attempt bound the job (its journal keeps the binding) or init_tracker did."""
    set_rc(template, "tracker", "backend", "mlflow")
    ran, bound = make(seed=0), make(seed=1)
    if binder == "init_tracker":
        run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker", "-j", ran.id], template,
                check=True)  # fmt: skip
    run_cmd([PYTHON, "project.py", "run", "-j", ran.id], template, check=True)
    run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker", "-j", bound.id], template,
            check=True)  # fmt: skip
    run_id = doc(ran)["tracker"]["run_id"]
    damaged = damage(doc(ran))
    text = damaged if isinstance(damaged, str) else json.dumps(damaged)
    Path(ran.path, "signac_job_document.json").write_text(text)

    said = cli(template, "remove", "--all", "--yes")  # a damaged job is warned about first
    bad(said, f"job {ran.id} run {run_id} (not on mlflow)", warnings=True)
    assert Path(ran.path).is_dir() and Path(bound.path).is_dir(), "nothing removed"
    ok(cli(template, "remove", bound.id, "--yes"))  # bound, never executed: nothing to lose
    assert not Path(bound.path).exists()
    done = cli(template, "remove", ran.id, "--force", "--yes")
    ok(done)
    assert f"deleted for good, never synced: job {ran.id} run {run_id}" in done.stderr
    assert not Path(ran.path).exists()


def test_remove_refuses_a_run_a_rerun_kept_that_was_never_synced(template: Path) -> None:
    set_rc(template, "tracker", "backend", "mlflow")
    job = make()
    run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker", "execute", "finish"], template,
            check=True)  # fmt: skip
    old = doc(job)["tracker"]["run_id"]
    ok(cli(template, "rerun", job.id, "--force"))  # the old run stays in the job only
    refused(cli(template, "remove", job.id, "--yes"), f"previous run {old} (not on mlflow)")
    assert Path(job.path).is_dir()


def test_remove_refuses_a_job_executing_on_another_node(template: Path) -> None:
    """An attempt on another node: its claim (a local lock) says nothing here, its heartbeat
    does."""
    from aexp.jobdoc import now_iso

    set_rc(template, "tracker", "backend", "noop")
    job = make()
    run_cmd([PYTHON, "project.py", "run"], template, check=True)
    document = doc(job)
    # A second attempt, recorded by node-17 (whose journal events this node may not see yet).
    document["tracker"]["state"] = "running"
    document["tracker"]["attempts"] += 1
    document["heartbeat_at"] = now_iso()
    document["attempt"] = {"host": "node-17", "pid": 4242, "slurm_job_id": "77",
                           "slurm_restart_count": "0"}  # fmt: skip
    _write(job, document)

    refused(cli(template, "remove", job.id, "--yes"), f"job {job.id} is executing on node-17")
    assert Path(job.path).is_dir()

    document["heartbeat_at"] = "2000-01-01T00:00:00+00:00"  # that node died long ago
    _write(job, document)
    ok(cli(template, "remove", job.id, "--yes"))
    assert not Path(job.path).exists()


# -- group_by -----------------------------------------------------------------------------------
def test_group_by_names_the_group_and_the_default_is_unchanged(template: Path) -> None:
    sp = {"hypothesis_id": "H1", "experiment_id": "E1", "condition": "full", "lr": 0.1, "seed": 2}
    assert spec_of(sp)["group"] == "H1/E1/full" and spec_of(sp)["tags"] == ["H1", "E1", "full"]
    assert spec_of({**sp, "condition": ""})["group"] == "H1/E1/default"
    spec = spec_of({**sp, "opt": {"name": "adam"}}, group_by=("lr", "opt.name", "missing"))
    assert spec["group"] == "H1/E1/lr=0.1,opt.name=adam,missing=-"
    assert spec["tags"] == ["H1", "E1", "lr=0.1", "opt.name=adam", "missing=-"]
    assert spec["config"] == spec_of({**sp, "opt": {"name": "adam"}})["config"]

    set_rc(template, "tracker", "backend", "noop")
    set_rc(template, "tracker", "group_by", "lr, seed")
    assert load_settings(template).group_by == ("lr", "seed")
    job = aexp.create_run(
        experiment_id="E018", hypothesis_id="H012", statepoint={"lr": 0.01, "seed": 3, "epochs": 2}
    )
    rows = json.loads(ok(cli(template, "runs", "--json")))["jobs"]
    assert rows[0]["group"] == "H012/E018/lr=0.01,seed=3"  # unbound: what it will be
    run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker"], template, check=True)
    binding = doc(job)["tracker"]
    assert binding["group"] == "H012/E018/lr=0.01,seed=3"
    assert binding["tags"] == ["H012", "E018", "lr=0.01", "seed=3", "template"]
    init = journal(job, binding["run_id"])[0]
    assert init["group"] == binding["group"]

    set_rc(template, "tracker", "group_by", "lr seed lr")
    with pytest.raises(SettingsError, match="names a key twice"):
        load_settings(template)
    set_rc(template, "tracker", "group_by", "l/r")
    with pytest.raises(SettingsError, match="names 'l/r', not a state-point key"):
        load_settings(template)
