"""End to end: the real `python project.py run / status / exec` on a temp copy of the template.

Both backends run for real: the noop backend's event logs, and the wandb client in offline mode
(its base URL a closed loopback port, so nothing can leave the machine).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, run_cmd, set_rc

import aexp
from aexp.checkpoint import read_checkpoint
from aexp.journal import journal_path
from aexp.trackers.noop import EVENTS_FILE, LOG_DIR


def sweep(n_seeds: int = 2, **extra: object) -> list:
    """Create a small sweep in the current project: two conditions x n_seeds."""
    return [
        aexp.create_run(
            experiment_id="E018",
            hypothesis_id="H012",
            statepoint={"condition": condition, "seed": seed, "epochs": 4, **extra},
        )
        for condition in ("full", "ablated")
        for seed in range(n_seeds)
    ]


def doc(job) -> dict:
    with open(Path(job.path, "signac_job_document.json")) as fh:
        return json.load(fh)


def events(job) -> list[dict]:
    (path,) = Path(job.path, LOG_DIR).glob(f"*/{EVENTS_FILE}")
    return [json.loads(line) for line in path.read_text().splitlines()]


def flow(template: Path, *args: str, env: dict | None = None, check: bool = True):
    return run_cmd([PYTHON, "project.py", *args], cwd=template, env=env, check=check)


def offline_folders(job) -> list[Path]:
    return sorted(Path(job.path, "wandb").glob("offline-run-*"))


def execute_in_background(template: Path, job) -> subprocess.Popen:
    """Start `exec execute` for `job` and return once it has logged two steps."""
    proc = subprocess.Popen(
        [PYTHON, "project.py", "exec", "execute", job.id],
        cwd=template,
        env={**os.environ, "AEXP_HEARTBEAT": "0.2"},  # last_step is recorded by the heartbeat
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while doc(job)["tracker"].get("last_step", -1) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


@pytest.fixture
def noop(template: Path) -> Path:
    set_rc(template, "tracker", "backend", "noop")
    return template


def test_noop_sweep_runs_to_finished_with_the_four_event_kinds(noop: Path) -> None:
    jobs = sweep()
    flow(noop, "run")
    for job in jobs:
        binding = doc(job)["tracker"]
        assert binding["backend"] == "noop"
        assert binding["state"] == "finished"
        assert binding["exit_code"] == 0 and binding["closed"] is True
        assert binding["group"] == f"H012/E018/{job.sp.condition}"
        assert binding["summary"]["epoch"] == 3
        assert doc(job)["status"] == "complete"
        kinds = [e["event"] for e in events(job)]
        assert kinds[0] == "init_run" and kinds[-1] == "finish"
        assert {"init_run", "log", "log_artifact", "finish"} <= set(kinds)
        steps = [e["step"] for e in events(job) if e["event"] == "log"]
        assert steps == [0, 1, 2, 3]
        artifact = next(e for e in events(job) if e["event"] == "log_artifact")
        assert artifact["name"] == "result.json" and artifact["size_bytes"] > 0
    status = flow(noop, "status", "-d").stdout
    assert "finished" in status and "noop" in status


def test_rerunning_a_finished_sweep_changes_nothing(noop: Path) -> None:
    jobs = sweep(n_seeds=1)
    flow(noop, "run")
    before = {job.id: (doc(job), events(job)) for job in jobs}
    result = flow(noop, "run")
    assert "failed" not in result.stderr
    assert {job.id: (doc(job), events(job)) for job in jobs} == before


def test_wandb_offline_sweep_writes_one_folder_per_run(template: Path) -> None:
    pytest.importorskip("wandb")
    jobs = sweep(n_seeds=1)
    flow(template, "run")
    for job in jobs:
        binding = doc(job)["tracker"]
        assert binding["backend"] == "wandb" and binding["offline"] is True
        assert binding["state"] == "finished"
        folders = offline_folders(job)
        assert len(folders) == 1 and folders[0].name.endswith("-" + binding["run_id"])
        assert (folders[0] / f"run-{binding['run_id']}.wandb").stat().st_size > 0
    status = flow(template, "status", "-d").stdout
    assert "unsynced" in status and "wandb-offline" in status


def test_a_failed_experiment_is_recorded_not_retried_and_can_be_rearmed(noop: Path) -> None:
    (job,) = [
        aexp.create_run(
            experiment_id="E018",
            hypothesis_id="H012",
            statepoint={"condition": "full", "seed": 0, "epochs": 4, "fail_at_epoch": 2},
        )
    ]
    (ok,) = sweep(n_seeds=1)[:1]
    result = flow(noop, "run", check=False)
    assert result.returncode == 1, "an experiment failed in this pass"
    assert f"job {job.id}: failed: RuntimeError: injected failure at epoch 2" in result.stderr
    binding = doc(job)["tracker"]
    assert binding["state"] == "failed" and binding["exit_code"] == 1
    assert binding["finished_at"] and binding["closed"]
    assert "injected failure at epoch 2" in Path(job.path, "error.log").read_text()
    assert events(job)[-1] == {**events(job)[-1], "event": "finish", "exit_code": 1}
    assert doc(ok)["tracker"]["state"] == "finished"  # the other job was not held up

    assert flow(noop, "run").returncode == 0  # not retried, and no failure in this pass
    assert doc(job)["tracker"]["attempts"] == 1
    assert "failed" in flow(noop, "status", "-d").stdout

    run_id = binding["run_id"]
    aexp.rearm(job)
    assert doc(job)["tracker"]["state"] == "bound"
    assert flow(noop, "run", check=False).returncode == 1  # it fails again: not fixed
    binding = doc(job)["tracker"]
    assert binding["attempts"] == 2 and binding["run_id"] == run_id
    steps = [e["step"] for e in events(job) if e["event"] == "log"]
    assert steps == list(range(len(steps))), "the step axis continues across attempts"
    assert [e["attempt"] for e in events(job) if e["event"] == "resume_run"] == [1, 2]


def test_a_killed_execute_shows_stale_and_resumes_the_same_run(noop: Path) -> None:
    job = aexp.create_run(
        experiment_id="E018",
        hypothesis_id="H012",
        statepoint={"condition": "full", "seed": 0, "epochs": 8, "epoch_seconds": 0.4},
    )
    # The default stale_after (300 s) is never reached here: on the same host a dead process is
    # recognised at once.
    env = {**os.environ, "AEXP_HEARTBEAT": "0.3"}
    proc = subprocess.Popen(
        [PYTHON, "project.py", "run"],
        cwd=noop,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tracker = doc(job).get("tracker", {}) if Path(job.path).exists() else {}
            if tracker.get("state") == "running" and tracker.get("last_step", -1) >= 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("execute never got going")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run_id = doc(job)["tracker"]["run_id"]
    assert doc(job)["tracker"]["state"] == "running"
    assert "stale" in flow(noop, "status", "-d", env=env).stdout

    flow(noop, "run", env=env)
    binding = doc(job)["tracker"]
    assert binding["run_id"] == run_id and binding["attempts"] == 2
    assert binding["state"] == "finished" and binding["summary"]["epoch"] == 7
    rows = [e for e in events(job) if e["event"] == "log"]
    history = [e for e in rows if not e.get("redo")]
    # One step axis 0, 1, 2, ... (no step twice, none skipped), and the template logs its epoch
    # as the step: the epoch in progress at the kill (logged, not checkpointed) is the only work
    # done again, kept in the journal marked `redo` at its own step, never a ninth row.
    assert [e["step"] for e in history] == list(range(8)), "no step was recorded twice"
    assert [e["metrics"]["epoch"] for e in history] == list(range(8))
    redone = [e for e in rows if e.get("redo")]
    assert len(redone) <= 1 and all(e["step"] == e["metrics"]["epoch"] < 8 for e in redone)
    assert len(list(Path(job.path, LOG_DIR).iterdir())) == 1, "one run, not two"


def test_sigterm_during_execute_is_a_recorded_preemption_that_resumes(noop: Path) -> None:
    job = aexp.create_run(
        experiment_id="E018",
        hypothesis_id="H012",
        statepoint={"condition": "full", "seed": 1, "epochs": 6, "epoch_seconds": 0.3},
    )
    flow(noop, "run", "-o", "init_tracker")
    proc = execute_in_background(noop, job)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stderr.read()
    binding = doc(job)["tracker"]
    assert binding["state"] == "preempted" and binding["exit_code"] == 143
    assert events(job)[-1]["event"] == "finish" and events(job)[-1]["preempted"] is True
    checkpoint = read_checkpoint(job.path)
    assert checkpoint.state["epoch"] >= 1

    flow(noop, "run")
    binding = doc(job)["tracker"]
    assert binding["state"] == "finished" and binding["attempts"] == 2
    epochs = [e["metrics"]["epoch"] for e in events(job) if e["event"] == "log"]
    assert epochs == list(range(6)), "the resumed attempt starts from its checkpoint"
    steps = [e["step"] for e in events(job) if e["event"] == "log"]
    assert steps == list(range(6))


def test_a_corrupted_binding_names_the_job_and_the_others_still_run(noop: Path) -> None:
    bad, *good = sweep()
    flow(noop, "run", "-o", "init_tracker")
    path = Path(bad.path, "signac_job_document.json")
    broken = {**doc(bad), "tracker": {"backend": "wandb"}}  # run_id lost by hand
    path.write_text(json.dumps(broken))
    result = flow(noop, "run", check=False)
    assert result.returncode == 1, "a corrupt job is a problem the user must see to"
    assert f"job {bad.id}" in result.stderr and "has no run_id" in result.stderr
    assert all(doc(job)["tracker"]["state"] == "finished" for job in good)
    assert json.loads(path.read_text()) == broken, "the corrupted job is left untouched"
    status = flow(noop, "status", "-d")
    assert "corrupt" in status.stdout


def status_labels(root: Path) -> dict[str, set[str]]:
    """{job id: its labels} from `status -d` (each job's first row of the detailed view)."""
    rows = {}
    for line in flow(root, "status", "-d").stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if re.fullmatch(r"[0-9a-f]{32}", cells[0]) and cells[0] not in rows:
            labels = cells[-1] if len(cells) == 3 else ""
            rows[cells[0]] = {x for x in labels.split(", ") if x}
    return rows


def test_status_shows_every_documented_label(noop: Path) -> None:
    """Every label of docs/workflow.md's table, each on a job in that state."""
    pytest.importorskip("wandb")
    names = ["unbound", "bound", "running", "stale", "stalled", "preempted", "completed",
             "failed", "finished", "synced", "unsynced", "online", "several",
             "corrupt"]  # fmt: skip
    jobs = {
        name: aexp.create_run(
            experiment_id="E018",
            hypothesis_id="H012",
            statepoint={
                "condition": name,
                "epochs": 2,
                **({"fail_at_epoch": 1} if name == "failed" else {}),
            },
        )
        for name in names
    }
    aexp.bind_tracker(jobs["unsynced"], "wandb", project="p", offline=True)
    aexp.bind_tracker(jobs["online"], "wandb", project="p", offline=False)
    aexp.bind_tracker(jobs["several"], ["wandb", "noop"], project="p", offline=True)
    ids = [jobs[n].id for n in ("bound", "running", "stale", "stalled", "preempted", "completed",
                                "failed", "finished", "synced", "corrupt")]  # fmt: skip
    flow(noop, "run", "-o", "init_tracker", "-j", *ids)
    flow(noop, "run", "-j", jobs["failed"].id, jobs["finished"].id, jobs["synced"].id, check=False)
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()  # a pid that is gone: the attempt "ran" on this host and died
    now = datetime.now(UTC).isoformat(timespec="seconds")

    def edit(name: str, **fields: object) -> None:
        data = doc(jobs[name])
        tracker = fields.pop("tracker", {})
        data["tracker"].update(tracker)
        data.update(fields)
        Path(jobs[name].path, "signac_job_document.json").write_text(json.dumps(data))

    host = os.uname().nodename
    edit("running", status="running", heartbeat_at=now, tracker={"state": "running"},
         attempt={"host": host, "pid": os.getpid()})  # fmt: skip
    edit("stale", status="running", heartbeat_at=now, tracker={"state": "running"},
         attempt={"host": host, "pid": dead.pid})  # fmt: skip
    # Alive (this process) with a fresh heartbeat, but its attempt opened longer ago than
    # [workflow] stall_after (600 s) and has logged no row since.
    alive = {"host": host, "pid": os.getpid()}
    edit("stalled", status="running", heartbeat_at=now, attempt=alive,
         tracker={"state": "running", "attempts": 1})  # fmt: skip
    opened = (datetime.now(UTC) - timedelta(seconds=700)).isoformat(timespec="seconds")
    run_id = doc(jobs["stalled"])["tracker"]["run_id"]
    with open(journal_path(jobs["stalled"].path, run_id), "a") as fh:
        fh.write(
            json.dumps({"timestamp": opened, "event": "resume_run", "attempt": 1, **alive}) + "\n"
        )
    edit("preempted", status="preempted", tracker={"state": "preempted", "exit_code": 143})
    edit("completed", status="complete", tracker={"state": "completed", "exit_code": 0})
    edit("synced", tracker={"synced_at": now})
    edit("unsynced", status="complete", tracker={"state": "finished", "finished_at": now})
    edit("corrupt", tracker={"attempts": "two"})

    labels = status_labels(noop)
    assert {name: labels[job.id] for name, job in jobs.items()} == {
        "unbound": set(),
        "bound": {"noop", "bound"},
        "running": {"noop", "running"},
        "stale": {"noop", "running", "stale"},
        "stalled": {"noop", "running", "stalled"},
        "preempted": {"noop", "preempted"},
        "completed": {"noop", "completed"},
        "failed": {"noop", "failed"},
        "finished": {"noop", "finished"},
        "synced": {"noop", "synced"},
        "unsynced": {"wandb-offline", "finished", "unsynced"},
        "online": {"wandb", "bound"},
        "several": {"wandb-offline+noop", "bound"},
        "corrupt": {"corrupt"},
    }
    text = (REPO / "docs" / "workflow.md").read_text()
    table = text[text.index("## Labels") : text.index("\n## ", text.index("## Labels") + 1)]
    documented = set(re.findall(r"^\| `([^`|]+)`", table, re.M))
    shown = set().union(*labels.values())
    assert shown - {"wandb-offline+noop"} <= documented, shown - documented
    assert documented - {"wandb-offline+mlflow"} == shown - {"wandb-offline+noop"}


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
def test_exec_of_each_operation_in_its_own_process_converges(noop: Path) -> None:
    (job,) = sweep(n_seeds=1)[:1]
    for op in ("init_tracker", "execute", "finish"):
        flow(noop, "exec", op, job.id)
    binding = doc(job)["tracker"]
    assert binding["state"] == "finished" and binding["closed"] is True
    kinds = [e["event"] for e in events(job)]
    assert kinds.count("finish") == 1, "finish in another process re-uses the closed run"


def test_wandb_preempted_run_resumes_one_run_id_with_a_continuous_step_axis(
    template: Path,
) -> None:
    pytest.importorskip("wandb")
    from aexp.wandb_offline import read_fragment

    job = aexp.create_run(
        experiment_id="E018",
        hypothesis_id="H012",
        statepoint={"condition": "full", "seed": 3, "epochs": 6, "epoch_seconds": 0.3},
    )
    flow(template, "run", "-o", "init_tracker")
    assert offline_folders(job) == [], "binding alone creates no W&B folder"
    proc = execute_in_background(template, job)
    proc.send_signal(signal.SIGUSR1)  # SLURM's time-limit warning signal
    assert proc.wait(timeout=60) == 128 + signal.SIGUSR1, proc.stderr.read()
    assert doc(job)["tracker"]["state"] == "preempted"

    flow(template, "run")
    binding = doc(job)["tracker"]
    assert binding["state"] == "finished" and binding["attempts"] == 2
    first, second = (read_fragment(folder) for folder in offline_folders(job))
    for fragment in (first, second):
        assert fragment.run_id == binding["run_id"]
        assert fragment.group == "H012/E018/full" == binding["group"]
        assert set(fragment.tags) >= {"H012", "E018", "full"}
        assert fragment.config["job_id"] == job.id
        assert fragment.config["limina.experiment_id"] == "E018"
        assert fragment.config["limina.hypothesis_id"] == "H012"
    assert first.state == "preempted" and first.exit_code == 128 + signal.SIGUSR1
    assert second.state == "finished" and second.exit_code == 0
    assert first.first_step == 0
    assert second.first_step == first.last_step + 1
    assert second.last_step == binding["last_step"] == 5
