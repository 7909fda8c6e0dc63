"""Offline sync (aexp.sync) with the real wandb client and the real `wandb sync` against a
loopback stand-in for W&B's cloud (tests/wandb_server.py; W&B's service cannot run here).

A module fixture runs the template's real workflow once (`python project.py run`, W&B offline):
three finished jobs, one of which was preempted by SIGTERM mid-way and resumed, so its run has
two offline folders ("fragments"). Each test syncs a private copy of that project. wandb is never
imported by this process: it runs in subprocesses (the workflow, `wandb sync`), every one of them
with a timeout, and everything lives in tmp_path.

Success is judged as aexp.sync judges it (W&B's synced marker plus no error in W&B's own log of
that sync) and checked against what the server received, never against an exit code.
"""

from __future__ import annotations

import _thread
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import (
    NEEDS_WANDB,
    PYTHON,
    copy_template,
    hermetic_env,
    preempt_attempt,
    run_cmd,
    snapshot,
)
from wandb_server import FAKE_API_KEY, FakeWandbServer, wandb_env

from aexp.sync import SyncResult, find_offline_runs, sync_jobs, sync_offline_runs

pytestmark = NEEDS_WANDB

STEP_TIMEOUT = 120  # every subprocess of the fixture

MAKE_JOBS = """
import json, aexp
jobs = {
    "full": aexp.create_run(experiment_id="E018", hypothesis_id="H012",
                            statepoint={"condition": "full", "seed": 0, "epochs": 3}),
    "ablated": aexp.create_run(experiment_id="E018", hypothesis_id="H012",
                               statepoint={"condition": "ablated", "seed": 0, "epochs": 3}),
    "preempted": aexp.create_run(experiment_id="E018", hypothesis_id="H012",
                                 statepoint={"condition": "full", "seed": 1, "epochs": 6,
                                             "epoch_seconds": 0.3}),
}
print(json.dumps({name: job.id for name, job in jobs.items()}))
"""


def doc(root: Path, job_id: str) -> dict:
    return json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())


def binding(root: Path, job_id: str) -> dict:
    return doc(root, job_id)["tracker"]


def markers(root: Path) -> list[Path]:
    return sorted(root.glob("workspace/*/wandb/offline-run-*/run-*.wandb.synced"))


def wandb_processes(marker: str) -> list[str]:
    """Command lines of live (not zombie) processes that mention `marker` (a test's temp dir)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(cmdline)
    return found


# -- the project, built once -------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("sync")
    root = copy_template(base / "template")
    env = hermetic_env(base / "env")
    ids = json.loads(run_cmd([PYTHON, "-c", MAKE_JOBS], root, env, STEP_TIMEOUT, check=True).stdout)
    run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker"], root, env, STEP_TIMEOUT, True)

    # Preempt one job mid-way, as SLURM's warning signal would; the next `run` resumes it.
    preempt_attempt(root, env, ids["preempted"], 1, timeout=STEP_TIMEOUT)
    assert binding(root, ids["preempted"])["state"] == "preempted"
    run_cmd([PYTHON, "project.py", "run"], root, env, STEP_TIMEOUT, check=True)

    runs = {name: binding(root, job_id)["run_id"] for name, job_id in ids.items()}
    for job_id in ids.values():
        assert binding(root, job_id)["state"] == "finished"
    fragments = sorted((root / "workspace" / ids["preempted"] / "wandb").glob("offline-run-*"))
    assert len(fragments) == 2, fragments
    assert not markers(root)
    return SimpleNamespace(root=root, ids=ids, runs=runs)


@pytest.fixture
def copy(built: SimpleNamespace, tmp_path: Path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(built.root, root, symlinks=True)
    return root


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fake W&B server, with this process's environment pointing wandb at it."""
    with FakeWandbServer() as srv:
        for key, value in wandb_env(tmp_path, srv.base_url).items():
            monkeypatch.setenv(key, value)
        yield srv


def by_run(results: list[SyncResult]) -> dict[str, list[SyncResult]]:
    grouped: dict[str, list[SyncResult]] = {}
    for r in results:
        grouped.setdefault(r.run_id or "", []).append(r)
    return grouped


def reason(result: SyncResult) -> str:
    return result.stderr.strip().splitlines()[-1]


# -- discovery ---------------------------------------------------------------------------------
def test_find_offline_runs_lists_every_fragment_in_order_looking_only_where_runs_live(
    copy: Path, built: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: object = "."):
        if str(path).startswith(str(copy / "workspace")):
            calls.append(str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", counting_scandir)
    monkeypatch.setattr(os, "walk", lambda *a, **k: pytest.fail("walked the tree"))
    paths = find_offline_runs(copy / "workspace")  # any directory inside the project
    assert len(calls) == 1 + 3, calls  # the workspace, then each job's wandb/ directory
    assert all(p.parent.name == "wandb" and p.name.startswith("offline-run-") for p in paths)
    assert len(paths) == 4
    assert paths == sorted(paths, key=lambda p: (p.parent.parent.name, p.name))
    preempted = [p for p in paths if p.parent.parent.name == built.ids["preempted"]]
    assert [p.name.endswith(built.runs["preempted"]) for p in preempted] == [True, True]


# -- the round trip --------------------------------------------------------------------------------
def test_offline_runs_arrive_with_their_id_group_tags_config_and_one_step_axis(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer
) -> None:
    results = sync_offline_runs(copy)

    assert len(results) == 4 and all(r.ok and not r.skipped for r in results), results
    runs = server.runs()
    assert set(runs) == set(built.runs.values())
    for name, job_id in built.ids.items():
        run_id = built.runs[name]
        run = runs[run_id]
        condition = "ablated" if name == "ablated" else "full"
        assert run["group"] == f"H012/E018/{condition}"
        assert run["tags"] == ["H012", "E018", condition, "template"]
        assert run["project"] == "aexp-demo"
        config = run["config"]
        assert config["job_id"] == job_id
        assert config["limina.experiment_id"] == "E018"
        assert config["limina.hypothesis_id"] == "H012"
        assert config["condition"] == condition
        assert run["exitcode"] == 0 and run["complete"]
        assert [a["name"] for a in run["artifacts"]] == ["result.json"]
        assert run["artifacts"][0]["committed"]
        # The binding records the upload: when, and where the run is now.
        tracker = binding(copy, job_id)
        assert tracker["run_id"] == run_id
        assert tracker["synced_at"]
        assert tracker["url"] == f"{server.base_url}/{server.entity}/aexp-demo/runs/{run_id}"

    # The preempted run: two fragments, uploaded one after the other in start-time order, one
    # continuous step axis 0..N-1 (steps logged explicitly, continuing across attempts).
    preempted = runs[built.runs["preempted"]]
    assert preempted["uploads"] == 2
    steps = [row["_step"] for row in preempted["history"]]
    assert steps == list(range(6))
    assert [row["epoch"] for row in preempted["history"]] == steps
    assert preempted["history_file"] == preempted["history"]
    (first, second) = by_run(results)[built.runs["preempted"]]
    assert Path(first.path).name < Path(second.path).name
    mine = [r for r in server.requests if r.run_id == built.runs["preempted"]]
    completed = [i for i, r in enumerate(mine) if (r.json or {}).get("complete")]
    second_start = [i for i, r in enumerate(mine) if r.operation == "RunResumeStatus"][1]
    assert completed[0] < second_start < completed[1], "one after the other"
    for r in results:
        assert r.returncode == 0 and r.duration > 0
        assert f"/{r.run_id}]" in r.stderr  # W&B's own lines about this run
        assert FAKE_API_KEY not in r.stdout + r.stderr
    assert len(markers(copy)) == 4
    assert not list(Path(os.environ["TMPDIR"]).glob("aexp-sync-*")), "temporary logs removed"


def test_a_second_sync_uploads_nothing(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer
) -> None:
    assert all(r.ok for r in sync_offline_runs(copy))
    documents = {job_id: doc(copy, job_id) for job_id in built.ids.values()}
    server.clear()

    start = time.monotonic()
    again = sync_offline_runs(copy)
    elapsed = time.monotonic() - start

    assert server.requests == [], "nothing was sent"
    assert [r.skipped for r in again] == ["already synced"] * 4
    assert all(r.ok and r.returncode is None for r in again)
    assert {job_id: doc(copy, job_id) for job_id in built.ids.values()} == documents
    assert elapsed < 1.0, elapsed  # no wandb process was started


def test_a_pass_with_nothing_to_upload_loads_neither_signac_nor_wandb(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer
) -> None:
    # Login nodes run `aexp sync-offline` from cron or a loop: an idle pass must stay cheap. It
    # reads the job documents and stops: not even aexp's W&B adapter or the results are loaded.
    assert all(r.ok for r in sync_offline_runs(copy))
    code = (
        "import sys; from aexp.cli import main; rc = main(['sync-offline']);"
        "wanted = {'signac', 'flow', 'wandb', 'aexp.trackers.wandb', 'aexp.results'};"
        "loaded = sorted(wanted & set(sys.modules));"
        "print('loaded:', loaded); sys.exit(rc)"
    )
    result = run_cmd([PYTHON, "-c", code], copy, check=True)
    assert "wandb: 3 already synced" in result.stdout + result.stderr
    assert "loaded: []" in result.stdout


# -- failures ------------------------------------------------------------------------------------
def test_a_partial_failure_syncs_the_rest_and_reports_the_failed_run(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer
) -> None:
    bad = built.runs["ablated"]
    server.set_mode("error500", for_run_ids={bad})

    results = sync_offline_runs(copy, timeout=60)

    failed = [r for r in results if not r.ok]
    assert [(r.run_id, r.job_id) for r in failed] == [(bad, built.ids["ablated"])]
    assert failed[0].returncode == 0, "wandb sync exits 0 even so: not a success signal"
    # W&B's error says nothing of what arrived: the server is asked, and it fails too, so the
    # upload stays in doubt (nothing is sent again until the server answers).
    assert "W&B reported an error" in failed[0].stderr and "500" in failed[0].stderr
    assert reason(failed[0]).startswith("in doubt: W&B could not say what it holds")
    assert all(r.ok and not r.skipped for r in results if r.run_id != bad)
    assert bad not in server.runs()
    assert not list((copy / "workspace" / built.ids["ablated"]).glob("wandb/*/*.synced"))
    assert not binding(copy, built.ids["ablated"]).get("synced_at")
    assert binding(copy, built.ids["full"])["synced_at"]

    # The server recovers: the next sync finishes the job and touches nothing else.
    server.set_mode("ok")
    server.clear()
    again = {r.run_id: r for r in sync_offline_runs(copy)}
    assert again[bad].ok and not again[bad].skipped
    assert {r.skipped for run_id, r in again.items() if run_id != bad} == {"already synced"}
    assert set(server.runs()) == {bad}
    assert binding(copy, built.ids["ablated"])["synced_at"]


def test_a_marker_written_for_an_incomplete_upload_counts_as_a_failure(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer
) -> None:
    """wandb writes its .synced marker (and exits 0) although every history request failed;
    its own log of the sync has the ERROR. The server, asked, holds the run's artifact but none
    of its rows: the fragment is recorded as far as the server holds it, the marker is taken
    back, and the next sync sends the rows (and the end) from the journal, once."""
    victim = built.runs["full"]
    server.set_mode("error500", for_run_ids={victim}, when=lambda r: r.path.endswith("file_stream"))

    results = {r.run_id: r for r in sync_offline_runs(copy, job_ids=[built.ids["full"]])}

    assert not results[victim].ok
    assert results[victim].returncode == 0
    assert "filestream" in results[victim].stderr
    assert reason(results[victim]).startswith("the server holds part of it (none of its rows)")
    assert server.runs()[victim]["history"] == [], "the server has the run, not its data"
    # W&B's marker stays: the job document records the fragment as far as the server holds it
    # (its artifact), and a bare `wandb sync` must not send that again either.
    assert list((copy / "workspace" / built.ids["full"]).glob("wandb/*/*.synced"))
    assert not binding(copy, built.ids["full"]).get("synced_at")

    server.set_mode("ok")
    assert all(r.ok for r in sync_offline_runs(copy, job_ids=[built.ids["full"]]))
    assert [row["epoch"] for row in server.runs()[victim]["history"]] == [0, 1, 2]
    assert server.runs()[victim]["exitcode"] == 0
    assert server.received()[victim]["artifact_versions"] == {"result.json": 1}


def test_a_hung_server_is_cut_off_by_the_timeout_and_the_next_sync_finishes(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer, tmp_path: Path
) -> None:
    server.set_mode("hang")
    start = time.monotonic()
    results = sync_offline_runs(copy, timeout=3, workers=4)
    elapsed = time.monotonic() - start

    assert elapsed < 20, elapsed
    uploads = [r for r in results if not r.skipped]
    assert uploads and not any(r.ok for r in uploads)
    assert all("timed out after 3 s" in r.stderr for r in uploads)
    # The server did not answer: it is not asked what arrived; the next sync asks first.
    assert {reason(r) for r in uploads} == {
        "in doubt: the server did not answer; the next sync asks it what arrived before "
        "sending anything of this run again"
    }
    assert all(r.returncode is None for r in uploads), "killed, not exited"
    later = [r for r in results if r.skipped]
    assert [r.run_id for r in later] == [built.runs["preempted"]]  # waits for its first part
    assert not markers(copy)
    assert not wandb_processes(str(tmp_path)), "the whole process tree was killed"
    assert not any(binding(copy, j).get("synced_at") for j in built.ids.values())

    server.set_mode("ok")
    assert all(r.ok and not r.skipped for r in sync_offline_runs(copy, timeout=60))
    assert all(binding(copy, j)["synced_at"] for j in built.ids.values())
    assert len(markers(copy)) == 4


def test_ctrl_c_leaves_every_run_synced_or_cleanly_unsynced(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer, tmp_path: Path
) -> None:
    hung = built.runs["ablated"]
    server.set_mode("hang", for_run_ids={hung})
    done = copy / "workspace" / built.ids["full"] / "wandb"

    def interrupt_once_the_others_are_through() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(done.glob("*/*.synced")):
            time.sleep(0.05)
        time.sleep(0.5)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_once_the_others_are_through, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        sync_offline_runs(copy, timeout=60)

    assert not wandb_processes(str(tmp_path)), "W&B was stopped"
    assert binding(copy, built.ids["full"])["synced_at"], "the finished run was recorded"
    assert not list((copy / "workspace" / built.ids["ablated"]).glob("wandb/*/*.synced"))
    assert not binding(copy, built.ids["ablated"]).get("synced_at")
    for job_id in built.ids.values():
        folders = sorted((copy / "workspace" / job_id / "wandb").glob("offline-run-*"))
        synced = [bool(list(f.glob("*.synced"))) for f in folders]
        assert synced == sorted(synced, reverse=True), "never a later fragment before an earlier"
        assert bool(binding(copy, job_id).get("synced_at")) == all(synced)

    server.set_mode("ok")
    assert all(r.ok for r in sync_offline_runs(copy, timeout=60))
    assert all(binding(copy, j)["synced_at"] for j in built.ids.values())


def test_sigterm_during_a_sync_stops_wandb_and_exits_143(
    copy: Path, server: FakeWandbServer, tmp_path: Path
) -> None:
    server.set_mode("hang")
    code = "import aexp.sync as s; s.sync_offline_runs('.', timeout=60)"
    proc = subprocess.Popen(
        [PYTHON, "-c", code],
        cwd=copy,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests, "the upload never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert not wandb_processes(str(tmp_path))
    assert not markers(copy)


# -- what is not uploaded ------------------------------------------------------------------------
def test_dry_run_changes_nothing_and_contacts_no_server(
    copy: Path, server: FakeWandbServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(copy)
    monkeypatch.setattr(
        subprocess, "Popen", lambda *a, **k: pytest.fail("a dry run started a process")
    )

    results = sync_offline_runs(copy, dry_run=True)

    assert len(results) == 4
    assert all(r.ok and not r.skipped and r.returncode is None for r in results)
    assert all("would sync" in r.stdout for r in results)
    assert snapshot(copy) == before
    assert server.requests == []


def test_a_job_that_is_still_executing_is_skipped(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer
) -> None:
    from aexp.jobdoc import now_iso

    path = copy / "workspace" / built.ids["full"] / "signac_job_document.json"
    document = json.loads(path.read_text())
    # As a compute node executing it would leave the document: running, a fresh heartbeat.
    document["tracker"]["state"] = "running"
    document["heartbeat_at"] = now_iso()
    document["attempt"] = {**document.get("attempt", {}), "host": "node-17", "pid": 4242}
    document["tracker"]["attempts"] += 1  # a new attempt, past the one the journal ended
    path.write_text(json.dumps(document))

    results = sync_offline_runs(copy, job_ids=[built.ids["full"]])
    assert [(r.ok, r.skipped) for r in results] == [(True, "still executing")]
    assert server.requests == []

    # A stale heartbeat means the attempt died: its fragment is uploaded, but the run is not
    # finished, so the binding does not call it synced.
    document["heartbeat_at"] = "2000-01-01T00:00:00+00:00"
    path.write_text(json.dumps(document))
    results = sync_offline_runs(copy, job_ids=[built.ids["full"]])
    assert [(r.ok, r.skipped) for r in results] == [(True, None)]
    assert not binding(copy, built.ids["full"]).get("synced_at")


# -- the workflow ------------------------------------------------------------------------------
def test_the_sync_offline_operation_runs_only_where_it_can_and_status_follows(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer, tmp_path: Path
) -> None:
    env = dict(os.environ)  # the fake server's environment (fixture), with WANDB_API_KEY

    def flow(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_cmd([PYTHON, "project.py", *args], copy, {**env, **extra}, 120, check=True)

    status = flow("status", "-d").stdout
    assert "unsynced" in status

    # Inside a SLURM allocation, or without credentials, the operation is not eligible.
    flow("run", SLURM_JOB_ID="4242")
    without_key = {k: v for k, v in env.items() if k != "WANDB_API_KEY"}
    run_cmd([PYTHON, "project.py", "run"], copy, without_key, 120, check=True)
    assert server.requests == []
    assert not markers(copy)

    result = flow("run")
    assert "not synced" not in result.stderr
    assert len(markers(copy)) == 4
    for job_id in built.ids.values():
        assert binding(copy, job_id)["synced_at"]
    status = flow("status", "-d").stdout
    assert "unsynced" not in status and "synced" in status

    server.clear()
    flow("run")  # nothing left to do
    assert server.requests == []


def test_sync_jobs_reports_a_failure_in_one_line_and_does_not_raise(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer, capsys: pytest.CaptureFixture
) -> None:
    import signac

    from aexp.settings import load_settings

    server.set_mode("error500")
    project = signac.get_project(str(copy))
    job = project.open_job(id=built.ids["full"])
    results = sync_jobs([job], load_settings(copy), timeout=60)
    err = capsys.readouterr().err.strip().splitlines()
    assert [r.ok for r in results] == [False]
    assert len(err) == 2 and err[0].startswith(
        f"sync_offline: job {built.ids['full']} run {built.runs['full']} ("
    )
    assert err[1].startswith("sync_offline: wandb: 1 failed (in doubt: ")


# -- what must catch breakage ------------------------------------------------------------------
def test_without_retry_caps_in_the_environment_aexps_own_caps_apply(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aexp.sync import RETRY_DEFAULTS, processes

    for name in RETRY_DEFAULTS:  # the test environment caps W&B's retries: not this time
        monkeypatch.delenv(name, raising=False)
    assert not any(name.startswith("WANDB__") and "RETRY" in name for name in os.environ)
    # aexp's own counts, with waits of 1 s so that the test stays short.
    quick = {k: "1" if k.endswith("_WAIT_MAX_SECONDS") else v for k, v in RETRY_DEFAULTS.items()}
    monkeypatch.setattr(processes, "RETRY_DEFAULTS", quick)
    bad = built.runs["ablated"]
    server.set_mode("error500", for_run_ids={bad})

    (result,) = sync_offline_runs(copy, job_ids=[built.ids["ablated"]], timeout=60)

    assert not result.ok and "W&B reported an error" in result.stderr
    # The run's first request (RunResumeStatus: aexp opens runs with resume="allow"), tried
    # once and retried RETRY_MAX times before W&B gave up.
    tries = [r for r in server.requests if r.operation == "RunResumeStatus" and r.run_id == bad]
    assert len(tries) == 1 + int(RETRY_DEFAULTS["WANDB__GRAPHQL_RETRY_MAX"])


def test_after_a_hung_upload_the_rest_is_reported_not_attempted(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that hangs costs one timeout, not one per run."""
    from aexp.sync import wandb_upload

    monkeypatch.setattr(wandb_upload, "MAX_PATHS_PER_PROCESS", 1)  # one run per process
    launches = []
    real_launch = wandb_upload.Launch

    def launch(*args, **kwargs):
        launches.append(args[0])
        return real_launch(*args, **kwargs)

    monkeypatch.setattr(wandb_upload, "Launch", launch)
    server.set_mode("hang")

    results = sync_offline_runs(copy, timeout=3, workers=1)

    reasons = sorted(reason(r) for r in results if not r.skipped)
    cut = "not attempted: the server did not answer (1 upload(s) timed out after 3 s)"
    assert reasons[1:] == [cut, cut]
    assert reasons[0].startswith("in doubt: the server did not answer")
    assert "timed out after 3 s" in next(r for r in results if reason(r) == reasons[0]).stderr
    assert len(launches) == 1, "no process was started after the first one hung"
    assert not markers(copy)


def test_a_job_claimed_by_another_process_is_skipped_in_one_line(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer, capsys: pytest.CaptureFixture
) -> None:
    busy = built.ids["full"]
    hold = (
        "import sys, time\n"
        "from aexp.jobdoc import JobDir\nfrom aexp.joblock import job_claim\n"
        "with job_claim(JobDir(sys.argv[1], sys.argv[2])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [PYTHON, "-c", hold, busy, str(copy / "workspace" / busy)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        results = sync_offline_runs(copy)
    finally:
        holder.kill()
        holder.wait()
    said = f"being uploaded by pid {holder.pid} on host {os.uname().nodename}"
    mine = [r for r in results if r.job_id == busy]
    assert [(r.ok, r.skipped) for r in mine] == [(True, said)]
    lines = [line for line in capsys.readouterr().err.splitlines() if busy in line]
    assert lines == [f"note: job {busy} run {built.runs['full']}: skipped, {said}"]
    assert all(r.ok and not r.skipped for r in results if r.job_id != busy)
    assert built.runs["full"] not in server.runs()

    assert all(r.ok for r in sync_offline_runs(copy))  # the claim is free again
    assert binding(copy, busy)["synced_at"]


def test_batches_stay_below_the_file_descriptor_limit(
    copy: Path, built: SimpleNamespace, server: FakeWandbServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resource

    from aexp.sync import claims, driver

    limits = {"soft": 1024}
    monkeypatch.setattr(resource, "getrlimit", lambda _: (limits["soft"], 4096))
    assert claims.batch_size() == claims.MAX_RUNS_PER_BATCH
    limits["soft"] = 200
    assert claims.batch_size() == (200 - claims.FD_RESERVE) // 2
    limits["soft"] = 70
    assert claims.batch_size() == 3
    limits["soft"] = 10
    assert claims.batch_size() == 1

    batches = []
    real_batch = driver._Sync.batch
    monkeypatch.setattr(claims, "batch_size", lambda: 1)
    monkeypatch.setattr(
        driver._Sync, "batch", lambda self, b: batches.append(b) or real_batch(self, b)
    )
    results = sync_offline_runs(copy)
    assert len(batches) == 3 and all(len(b) == 1 for b in batches)
    assert len(results) == 4 and all(r.ok and not r.skipped for r in results)
    assert all(binding(copy, job_id)["synced_at"] for job_id in built.ids.values())
    assert server.runs()[built.runs["preempted"]]["uploads"] == 2
