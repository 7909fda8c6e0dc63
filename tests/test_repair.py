"""The journal is the truth: W&B fragments mended and completed from it, and synced from the job
document's point of view (aexp.wandb_offline, aexp.trackers.wandb_repair, aexp.sync).

Real wandb client offline (the template's `python project.py run`), real `wandb sync` against the
loopback stand-in of W&B's cloud (tests/wandb_server.py). What the server received is compared
with the run's journal, exactly: every step once, in order, with its values. Syncs that may write
repair fragments (wandb in process) run as `aexp sync-offline` subprocesses.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import NEEDS_WANDB, PYTHON, copy_template, hermetic_env, preempt_attempt, run_cmd
from wandb_server import FakeWandbServer, wandb_env

from aexp.journal import journal_path, read_journal

pytestmark = NEEDS_WANDB

STEP_TIMEOUT = 180

MAKE_JOBS = """
import json, sys, aexp
specs = json.loads(sys.argv[1])
jobs = {name: aexp.create_run(experiment_id="E018", hypothesis_id="H012", statepoint=sp)
        for name, sp in specs.items()}
print(json.dumps({name: job.id for name, job in jobs.items()}))
"""


# -- helpers ------------------------------------------------------------------------------------
def doc(root: Path, job_id: str) -> dict[str, Any]:
    return json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())


def binding(root: Path, job_id: str) -> dict[str, Any]:
    return doc(root, job_id)["tracker"]


def finished(root: Path, job_id: str) -> bool:
    return bool((doc(root, job_id).get("tracker") or {}).get("finished_at"))


def write_binding(root: Path, job_id: str, tracker: dict[str, Any]) -> None:
    path = root / "workspace" / job_id / "signac_job_document.json"
    document = json.loads(path.read_text())
    document["tracker"] = tracker
    path.write_text(json.dumps(document))


def fragments(root: Path, job_id: str) -> list[Path]:
    return sorted((root / "workspace" / job_id / "wandb").glob("offline-run-*"))


def markers(root: Path) -> list[Path]:
    return sorted(root.glob("workspace/*/wandb/offline-run-*/run-*.wandb.synced"))


def journal_of(root: Path, job_id: str) -> Any:
    return read_journal(journal_path(root / "workspace" / job_id, binding(root, job_id)["run_id"]))


def expected_history(root: Path, job_id: str) -> list[tuple[int, int, float]]:
    """(step, epoch, loss) of every row of the job's journal history, in order."""
    return [
        (row.step, row.metrics["epoch"], row.metrics["loss"])
        for row in journal_of(root, job_id).history()
    ]


def received_history(server: FakeWandbServer, run_id: str) -> list[tuple[int, int, float]]:
    """(step, epoch, loss) of every history row the server received for the run, in order."""
    return [(row["_step"], row["epoch"], row["loss"]) for row in server.runs()[run_id]["history"]]


def make_project(root: Path, env: dict[str, str], specs: dict[str, dict]) -> dict[str, str]:
    copy_template(root)
    out = run_cmd([PYTHON, "-c", MAKE_JOBS, json.dumps(specs)], root, env, STEP_TIMEOUT, True)
    return json.loads(out.stdout)


def preempt(root: Path, env: dict[str, str], job_id: str, after_step: int) -> None:
    """Run one attempt of `job_id` and send it SIGTERM once it logged `after_step`."""
    preempt_attempt(root, env, job_id, after_step, timeout=STEP_TIMEOUT)


def aexp_sync(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return run_cmd(
        [PYTHON, "-m", "aexp.cli", "sync-offline", *args], root, env or dict(os.environ), timeout
    )


def notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note: ")]


# -- the sweep, built once ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Three finished W&B offline runs; `p` was preempted and resumed (two fragments). The
    project was then moved: every staged artifact path in the fragments points where the
    project no longer is."""
    base = tmp_path_factory.mktemp("repair")
    env = hermetic_env(base / "env")
    first = base / "first-home"
    ids = make_project(
        first,
        env,
        {
            "a": {"condition": "full", "seed": 0, "epochs": 4},
            "b": {"condition": "ablated", "seed": 0, "epochs": 4},
            "p": {"condition": "full", "seed": 1, "epochs": 8, "epoch_seconds": 0.25},
        },
    )
    run_cmd([PYTHON, "project.py", "run", "-o", "init_tracker"], first, env, STEP_TIMEOUT, True)
    preempt(first, env, ids["p"], after_step=2)
    run_cmd([PYTHON, "project.py", "run"], first, env, STEP_TIMEOUT, check=True)
    assert len(fragments(first, ids["p"])) == 2
    root = base / "moved" / "project"
    root.parent.mkdir()
    os.rename(first, root)
    runs = {name: binding(root, job_id)["run_id"] for name, job_id in ids.items()}
    return SimpleNamespace(root=root, ids=ids, runs=runs)


@pytest.fixture
def copy(sweep: SimpleNamespace, tmp_path: Path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(sweep.root, root, symlinks=True)
    return root


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fake W&B server, with this process's environment (a new HOME) pointing wandb at it."""
    with FakeWandbServer() as srv:
        for key, value in wandb_env(tmp_path, srv.base_url).items():
            monkeypatch.setenv(key, value)
        yield srv


# -- mending and repairing ------------------------------------------------------------------------
def test_a_header_only_and_a_torn_fragment_sync_with_their_rows_from_the_journal(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    p, run = sweep.ids["p"], sweep.runs["p"]
    first, second = fragments(copy, p)
    # What a SIGKILL leaves: the first attempt's log holds its 7-byte header only; the second's
    # ends inside a record.
    log1 = first / f"run-{run}.wandb"
    log1.write_bytes(log1.read_bytes()[:7])
    log2 = second / f"run-{run}.wandb"
    data = log2.read_bytes()
    log2.write_bytes(data[: len(data) * 2 // 3])

    result = aexp_sync(copy, "-v")

    assert result.returncode == 0, result.stdout + result.stderr
    said = notes(result.stderr)
    assert sum("held no run" in line and first.name in line for line in said) == 1, said
    assert sum("torn by a killed attempt" in line and second.name in line for line in said) == 1
    assert any("written into offline-run-" in line for line in said), said
    assert (first / f"run-{run}.wandb.empty").exists(), "set aside, nothing deleted"
    assert (second / f"run-{run}.wandb.torn").read_bytes() == data[: len(data) * 2 // 3]
    for name, job_id in sweep.ids.items():
        assert received_history(server, sweep.runs[name]) == expected_history(copy, job_id), name
        assert binding(copy, job_id)["synced_at"], name
        assert server.runs()[sweep.runs[name]]["exitcode"] == 0
    # p: the repair fragment before the (cut back) second one, the one after it: 3 uploads.
    assert server.runs()[run]["uploads"] == 3
    recorded = binding(copy, p)["backends"]["wandb"]["state"]["fragments"]
    assert second.name in recorded and first.name not in recorded and len(recorded) == 3
    assert [a["name"] for a in server.runs()[run]["artifacts"]] == ["result.json"]

    server.clear()
    again = aexp_sync(copy)
    assert again.returncode == 0 and server.requests == []
    assert notes(again.stderr) == [], "each mended fragment is reported once"


def test_a_fragment_w_and_b_cannot_read_never_fails_the_other_jobs(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    a, run = sweep.ids["a"], sweep.runs["a"]
    (only,) = fragments(copy, a)
    (only / f"run-{run}.wandb").write_bytes(b"not a W&B log at all")

    result = aexp_sync(copy, "-v")

    assert result.returncode == 0, result.stdout + result.stderr
    assert any("cannot be read" in line for line in notes(result.stderr))
    for name, job_id in sweep.ids.items():  # a's rows came from its journal
        assert received_history(server, sweep.runs[name]) == expected_history(copy, job_id)


def test_a_backend_that_failed_during_the_attempt_gets_the_whole_run_from_the_journal(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    b, run = sweep.ids["b"], sweep.runs["b"]
    for folder in fragments(copy, b):  # W&B never opened: no fragment at all
        shutil.rmtree(folder)
    tracker = binding(copy, b)
    tracker["backends"]["wandb"]["error"] = "could not open the run: W&B refused"
    write_binding(copy, b, tracker)

    result = aexp_sync(copy)

    assert result.returncode == 0, result.stdout + result.stderr
    assert received_history(server, run) == expected_history(copy, b)
    assert server.runs()[run]["exitcode"] == 0
    assert server.runs()[run]["group"] == "H012/E018/ablated"
    assert server.runs()[run]["config"]["job_id"] == b
    summary = server.runs()[run]["summary"]
    assert summary["loss"] == journal_of(copy, b).summary["loss"]
    assert [a["name"] for a in server.runs()[run]["artifacts"]] == ["result.json"]
    assert server.runs()[run]["artifacts"][0]["files"] == ["result.json"]
    assert binding(copy, b)["synced_at"]


def test_a_killed_repair_leaves_nothing_that_would_be_uploaded(copy: Path, sweep: SimpleNamespace):
    from aexp.trackers.wandb_repair import REPAIR_STAGING

    a, run = sweep.ids["a"], sweep.runs["a"]
    staging = copy / "workspace" / a / "wandb" / REPAIR_STAGING / "wandb"
    (staging / f"offline-run-20990101_000000-{run}").mkdir(parents=True)
    (staging / f"offline-run-20990101_000000-{run}" / f"run-{run}.wandb").write_bytes(b":W&B")
    from aexp.sync import find_offline_runs

    assert all(REPAIR_STAGING not in str(p) for p in find_offline_runs(copy))


# -- the job document is the truth ----------------------------------------------------------------
def test_deleted_markers_never_cause_a_second_upload(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    from aexp.sync import sync_offline_runs

    assert all(r.ok for r in sync_offline_runs(copy))
    assert len(markers(copy)) == 4
    for marker in markers(copy):
        marker.unlink()
    server.clear()

    again = sync_offline_runs(copy)

    assert server.requests == [], "nothing uploaded: the job documents say synced"
    assert [r.skipped for r in again] == ["already synced"] * 4

    # Fragment by fragment too: runs not through yet (say, preempted ones), whose synced
    # fragments the W&B part records.
    for job_id in sweep.ids.values():
        tracker = binding(copy, job_id)
        tracker["synced_at"] = tracker["backends"]["wandb"]["synced_at"] = None
        write_binding(copy, job_id, tracker)
    again = sync_offline_runs(copy)
    assert server.requests == []
    assert [r.skipped for r in again] == ["already synced"] * 4
    assert all(binding(copy, job_id)["synced_at"] for job_id in sweep.ids.values())


def test_resync_really_uploads_again(copy: Path, sweep: SimpleNamespace, server: FakeWandbServer):
    assert aexp_sync(copy).returncode == 0
    uploads = {run: view["uploads"] for run, view in server.runs().items()}
    assert uploads == {sweep.runs["a"]: 1, sweep.runs["b"]: 1, sweep.runs["p"]: 2}

    result = aexp_sync(copy, "--resync")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "wandb: 3 uploaded", result.stdout
    again = {run: view["uploads"] for run, view in server.runs().items()}
    assert again == {run: 2 * n for run, n in uploads.items()}


def test_a_marker_the_document_does_not_record_is_taken_as_uploaded(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    """A sync killed after W&B wrote its marker: the next one records it, uploads nothing."""
    from aexp.sync import sync_offline_runs

    assert all(r.ok for r in sync_offline_runs(copy))
    for job_id in sweep.ids.values():  # the document as a sync killed before recording leaves it
        tracker = binding(copy, job_id)
        tracker["synced_at"] = None
        tracker["backends"]["wandb"] = {**tracker["backends"]["wandb"], "synced_at": None}
        tracker["backends"]["wandb"].pop("state")
        write_binding(copy, job_id, tracker)
    server.clear()

    again = sync_offline_runs(copy)

    assert server.requests == []
    assert [r.skipped for r in again] == ["already synced"] * 4
    for job_id in sweep.ids.values():
        assert binding(copy, job_id)["synced_at"]
        assert len(binding(copy, job_id)["backends"]["wandb"]["state"]["fragments"]) >= 1


# -- claims ----------------------------------------------------------------------------------------
def test_two_syncs_at_once_upload_each_run_once(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "aexp.cli", "sync-offline"],
            cwd=copy,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=STEP_TIMEOUT) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs

    uploads = {run: view["uploads"] for run, view in server.runs().items()}
    assert uploads == {sweep.runs["a"]: 1, sweep.runs["b"]: 1, sweep.runs["p"]: 2}
    for name, job_id in sweep.ids.items():
        assert received_history(server, sweep.runs[name]) == expected_history(copy, job_id)
    server.clear()
    assert aexp_sync(copy).returncode == 0
    assert server.requests == []
    assert all(binding(copy, job_id)["synced_at"] for job_id in sweep.ids.values())


def test_a_sync_killed_mid_upload_is_neither_repeated_nor_raced(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer, tmp_path: Path
) -> None:
    """kill -9 of a sync while its `wandb sync` uploads: that process keeps the claims; a second
    sync skips the runs naming it; once it is done, a third records its uploads without
    uploading anything twice."""
    from aexp.joblock import CLAIM_FILE

    slow = sweep.runs["a"]
    server.set_mode("hang", for_run_ids={slow})
    first = subprocess.Popen(
        [PYTHON, "-m", "aexp.cli", "sync-offline", "--timeout", "600"],
        cwd=copy,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    claim = copy / "workspace" / sweep.ids["a"] / CLAIM_FILE
    child = None
    try:
        deadline = time.monotonic() + STEP_TIMEOUT
        while not any(r.run_id == slow for r in server.requests):
            assert time.monotonic() < deadline and first.poll() is None, "no upload started"
            time.sleep(0.05)
        child = int(claim.read_text().split()[0])  # the `wandb sync` that inherited the claim
        assert child != first.pid
        first.kill()  # SIGKILL: no cleanup at all
        first.wait(timeout=30)
        assert _alive(child), "wandb sync outlives the sync that started it"

        second = aexp_sync(copy, "-v")
        assert f"being uploaded by pid {child} on host {os.uname().nodename}" in second.stderr
        assert second.stdout.splitlines()[-1] == "wandb: 3 skipped", second.stdout

        server.set_mode("ok")  # the hung upload goes through; wandb sync finishes and exits
        deadline = time.monotonic() + STEP_TIMEOUT
        while _alive(child):
            assert time.monotonic() < deadline, "wandb sync never finished"
            time.sleep(0.1)
    finally:
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
    third = aexp_sync(copy)
    assert third.returncode == 0, third.stdout + third.stderr
    uploads = {run: view["uploads"] for run, view in server.runs().items()}
    assert uploads == {sweep.runs["a"]: 1, sweep.runs["b"]: 1, sweep.runs["p"]: 2}
    for name, job_id in sweep.ids.items():
        assert received_history(server, sweep.runs[name]) == expected_history(copy, job_id)
        assert binding(copy, job_id)["synced_at"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- moved projects --------------------------------------------------------------------------------
def test_a_moved_project_with_another_home_syncs_every_run_artifact_included(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    # The sweep ran under another path and another HOME (the fixture's); this sync runs with
    # this test's HOME (the server fixture) from the copy.
    result = aexp_sync(copy)

    assert result.returncode == 0, result.stdout + result.stderr
    moved = [line for line in notes(result.stderr) if "the project moved" in line]
    staged = [fragments(copy, job_id)[-1].name for job_id in sweep.ids.values()]  # the artifacts
    assert sorted(line.split(": ")[2] for line in moved) == sorted(staged), result.stderr
    runs = server.runs()
    for name, job_id in sweep.ids.items():
        run = runs[sweep.runs[name]]
        assert received_history(server, sweep.runs[name]) == expected_history(copy, job_id)
        (artifact,) = run["artifacts"]
        assert artifact["name"] == "result.json"
        assert artifact["files"] == ["result.json"] and artifact["manifest"]
        assert artifact["committed"]
        assert binding(copy, job_id)["synced_at"]


# -- several backends ------------------------------------------------------------------------------
class Probe:
    """What a replay-fed adapter was asked (shared by the test and ReplayProbe)."""

    calls: list[tuple[str, int, dict]] = []
    failing: set[str] = set()


def _probe_class():
    from aexp.trackers.base import ReplayResult, TrackerAdapter

    class ReplayProbe(TrackerAdapter):
        """A backend fed by replay, written to the base contract: it keeps what it was sent."""

        name = "probe"
        feed = "replay"

        def init_run(self, **kwargs: Any) -> Any:
            raise AssertionError("a replayed backend is never opened during an attempt")

        def log(self, handle: Any, metrics: Any, *, step: int | None = None) -> None:
            raise AssertionError("never called live")

        def log_artifact(self, handle: Any, name: str, path: Any) -> None:
            raise AssertionError("never called live")

        def finish(self, handle: Any, *, exit_code: int = 0, preempted: bool = False) -> None:
            raise AssertionError("never called live")

        def list_runs(self, *, project: str, group_prefix: str = "") -> list:
            return []

        def replay(self, journal: Any, *, job_path: str, state: Any) -> ReplayResult:
            if journal.run_id in Probe.failing:
                raise ConnectionError("probe server unreachable")
            sent = len(journal.history()) - int(state.get("rows", 0))
            Probe.calls.append((journal.run_id, sent, dict(state)))
            return ReplayResult(
                url=f"probe://runs/{journal.run_id}",
                rows=sent,
                state={"rows": len(journal.history())},
                complete=True,
            )

    return ReplayProbe


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch):
    from aexp.trackers import ADAPTERS

    monkeypatch.setitem(ADAPTERS, "probe", _probe_class())
    monkeypatch.setattr(Probe, "calls", [])
    monkeypatch.setattr(Probe, "failing", set())
    return Probe


def add_probe(root: Path, job_id: str) -> None:
    tracker = binding(root, job_id)
    tracker["backends"]["probe"] = {"url": None, "synced_at": None, "error": None, "options": {}}
    write_binding(root, job_id, tracker)


def test_several_backends_each_synced_in_its_own_part_one_failure_contained(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer, probe: Any
) -> None:
    from aexp.sync import sync_offline_runs

    for job_id in sweep.ids.values():
        add_probe(copy, job_id)
    probe.failing = {sweep.runs["b"]}

    results = sync_offline_runs(copy)

    by_backend = {(r.job_id, r.backend): r for r in results}
    b = sweep.ids["b"]
    assert not by_backend[(b, "probe")].ok
    assert "probe server unreachable" in by_backend[(b, "probe")].stderr
    assert all(r.ok for r in results if (r.job_id, r.backend) != (b, "probe"))
    assert sorted(run for run, _, _ in probe.calls) == sorted([sweep.runs["a"], sweep.runs["p"]])
    for name, job_id in sweep.ids.items():
        tracker = binding(copy, job_id)
        assert tracker["backends"]["wandb"]["synced_at"], "W&B is not held up by the probe"
        assert received_history(server, sweep.runs[name]) == expected_history(copy, job_id)
        part = tracker["backends"]["probe"]
        if job_id == b:
            assert "probe server unreachable" in part["error"]
            assert not part["synced_at"] and not tracker["synced_at"]
        else:
            assert part["synced_at"] and part["error"] is None
            assert part["url"] == f"probe://runs/{sweep.runs[name]}"
            assert part["state"] == {"rows": len(expected_history(copy, job_id))}
            assert tracker["synced_at"]

    # The backend comes back: only b's replay runs, W&B sends nothing.
    server.clear()
    probe.failing = set()
    probe.calls.clear()
    assert all(r.ok for r in sync_offline_runs(copy))
    assert server.requests == []
    assert [run for run, _, _ in probe.calls] == [sweep.runs["b"]]
    assert binding(copy, b)["synced_at"] and binding(copy, b)["backends"]["probe"]["error"] is None
    probe.calls.clear()
    sync_offline_runs(copy)
    assert probe.calls == [], "a second sync replays nothing"


def test_a_preempted_run_is_synced_as_far_as_it_went_but_not_called_synced(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer, probe: Any
) -> None:
    from aexp.sync import sync_offline_runs

    a = sweep.ids["a"]
    add_probe(copy, a)
    tracker = binding(copy, a)
    tracker.update(state="preempted", finished_at=None)
    write_binding(copy, a, tracker)

    sync_offline_runs(copy, job_ids=[a])

    tracker = binding(copy, a)
    assert [run for run, _, _ in probe.calls] == [sweep.runs["a"]]
    assert tracker["backends"]["probe"]["synced_at"]
    assert tracker["backends"]["wandb"]["state"]["fragments"], "its fragment is uploaded"
    # W&B holds the run as far as it went (a new attempt clears this again), but the run is not
    # finished: the binding does not call it synced.
    assert tracker["backends"]["wandb"]["synced_at"]
    assert not tracker["synced_at"]


# -- the flow operation ---------------------------------------------------------------------------
def test_the_operation_syncs_the_whole_pass_in_one_go(
    copy: Path, sweep: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signac

    from aexp.settings import load_settings
    from aexp.sync import driver, operation

    calls: list[list[str]] = []
    monkeypatch.setattr(  # the operation imports it on first use
        driver, "sync_offline_runs", lambda root, job_ids, **kw: calls.append(job_ids) or []
    )
    monkeypatch.setattr(operation, "_pending", {})
    monkeypatch.setattr(operation, "_handled", set())
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    project = signac.get_project(str(copy))
    jobs = [project.open_job(id=job_id) for job_id in sweep.ids.values()]
    settings = load_settings(copy)

    assert all(operation.sync_ready(job) for job in jobs)  # flow: every precondition first
    for job in jobs:  # then the operations
        operation.sync_operation(job, settings)

    assert len(calls) == 1 and sorted(calls[0]) == sorted(sweep.ids.values())
    operation.sync_operation(jobs[0], settings)
    assert len(calls) == 1, "a job the pass synced returns at once"
    assert operation.sync_ready(jobs[0])  # a new pass
    operation.sync_operation(jobs[0], settings)
    assert calls[1] == [jobs[0].id]


def test_a_host_that_cannot_sync_says_so_once_per_pass(
    copy: Path,
    sweep: SimpleNamespace,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import signac

    from aexp.sync import forget_sync_blocker, operation

    monkeypatch.setattr(operation, "_said", set())
    monkeypatch.setattr(operation, "_pending", {})
    forget_sync_blocker()
    project = signac.get_project(str(copy))
    jobs = [project.open_job(id=job_id) for job_id in sweep.ids.values()]
    assert not any(operation.sync_ready(job) for job in jobs)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "sync_offline: wandb not synced from this host: no W&B credentials"
    ), err
    forget_sync_blocker()


# -- random kill -9 of `project.py run` -----------------------------------------------------------
KILL_TRIALS = 10


def test_random_kills_of_run_lose_no_step_and_repeat_no_checkpointed_work(
    tmp_path: Path,
) -> None:
    """kill -9 of `python project.py run` at random moments of a slow-epoch W&B offline sweep
    (at most KILL_TRIALS times, while it is unfinished), then `run` until it converges, then
    one sync: the server holds every step of every journal once, in order."""
    seed = int(os.environ.get("AEXP_KILL_SEED", str(random.randrange(10**6))))
    rng = random.Random(seed)
    env = {**hermetic_env(tmp_path / "env"), "AEXP_HEARTBEAT": "0.2"}
    root = tmp_path / "project"
    epochs = 12
    ids = make_project(
        root,
        env,
        {
            f"s{n}": {"condition": "full", "seed": n, "epochs": epochs, "epoch_seconds": 0.25}
            for n in range(3)
        },
    )
    killed = 0
    for _ in range(KILL_TRIALS):
        if all(finished(root, j) for j in ids.values()):
            break
        proc = subprocess.Popen(
            [PYTHON, "project.py", "run"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=rng.uniform(1.0, 4.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the OOM killer, a node failure
            proc.wait()
            killed += 1
    for _ in range(3):  # until converged
        run_cmd([PYTHON, "project.py", "run"], root, env, STEP_TIMEOUT, check=True)
        if all(finished(root, j) for j in ids.values()):
            break
    assert all(binding(root, j)["state"] == "finished" for j in ids.values()), f"seed {seed}"
    assert killed >= 3, f"seed {seed}: only {killed} trial(s) were cut short"

    with FakeWandbServer() as server:
        result = aexp_sync(root, env=wandb_env(tmp_path / "sync", server.base_url))
        assert result.returncode == 0, result.stdout + result.stderr
        for job_id in ids.values():
            journal = journal_of(root, job_id)
            history = [(row.step, row.metrics["epoch"]) for row in journal.history()]
            # The step axis: 0, 1, 2, ... once each. The work: every epoch, in order; an epoch is
            # done again only after a kill between its row and its checkpoint (docs/workflow.md:
            # work before the last checkpoint is never repeated), so at most once per kill.
            assert [step for step, _ in history] == list(range(len(history))), f"seed {seed}"
            done = [epoch for _, epoch in history]
            assert sorted(set(done)) == list(range(epochs)) and done == sorted(done), seed
            killed_attempts = sum(1 for a in journal.attempts if not a.finished)
            assert len(done) - epochs <= killed_attempts, f"seed {seed}"
            run_id = binding(root, job_id)["run_id"]
            assert received_history(server, run_id) == expected_history(root, job_id), seed
            assert server.runs()[run_id]["exitcode"] == 0
            assert binding(root, job_id)["synced_at"]


# -- hermetic tests -------------------------------------------------------------------------------
def test_the_in_process_wandb_core_writes_its_port_file_inside_the_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb
    from wandb.sdk.lib.service import service_process

    started: list[list[str]] = []
    real_popen = service_process.subprocess.Popen

    def spy(args: Any, **kwargs: Any) -> Any:  # subprocess.Popen itself: every process
        if isinstance(args, list) and "--port-filename" in args:
            started.append(list(args))
        return real_popen(args, **kwargs)

    wandb.teardown()  # a service started by an earlier test would be reused
    monkeypatch.setattr(service_process.subprocess, "Popen", spy)
    try:
        run = wandb.init(mode="offline", dir=str(tmp_path), project="p", settings={"silent": True})
        run.finish()
    finally:
        wandb.teardown()
    (args,) = started
    port_file = Path(args[args.index("--port-filename") + 1])
    assert tmp_path in port_file.parents, port_file


def test_an_online_run_whose_backend_failed_gets_only_the_rows_it_missed(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    """An online W&B run that failed after step 1: wandb's local copy of what it streamed
    (`wandb/run-<time>-<id>/`) counts as on the server; only steps 2.. are uploaded."""
    from aexp.wandb_offline import read_log, record_class, write_log

    a, run = sweep.ids["a"], sweep.runs["a"]
    (offline,) = fragments(copy, a)
    online = offline.with_name(offline.name.replace("offline-run-", "run-"))
    offline.rename(online)
    log = online / f"run-{run}.wandb"
    payloads = read_log(log).payloads
    Record = record_class()
    keep = []
    for payload in payloads:  # what was streamed before W&B failed: rows 0 and 1
        record = Record.FromString(payload)
        if record.WhichOneof("record_type") == "history" and record.history.step.num >= 2:
            break
        keep.append(payload)
    log.unlink()
    write_log(log, keep)
    tracker = binding(copy, a)
    tracker["offline"] = False
    tracker["backends"]["wandb"]["error"] = "failed to log step 2: connection reset"
    write_binding(copy, a, tracker)

    result = aexp_sync(copy, a)

    assert result.returncode == 0, result.stdout + result.stderr
    assert received_history(server, run) == expected_history(copy, a)[2:]
    assert server.runs()[run]["exitcode"] == 0
    assert binding(copy, a)["synced_at"]


# -- the offline files, read and mended (aexp.wandb_offline) -----------------------------------
def all_logs(root: Path) -> list[Path]:
    return sorted(root.glob("workspace/*/wandb/offline-run-*/run-*.wandb"))


def test_the_writer_reproduces_the_bytes_wandb_wrote(sweep: SimpleNamespace, tmp_path: Path):
    from aexp.wandb_offline import read_log, write_log

    logs = all_logs(sweep.root)
    assert len(logs) == 4
    for n, log in enumerate(logs):
        contents = read_log(log)
        assert not contents.torn and contents.end == log.stat().st_size
        out = tmp_path / f"{n}.wandb"
        write_log(out, contents.payloads)
        assert out.read_bytes() == log.read_bytes(), log


def test_the_framing_of_records_across_blocks(tmp_path: Path) -> None:
    from aexp.wandb_offline import BLOCK_SIZE, read_log, write_log
    from aexp.wandb_offline.framing import HEADER_BYTES, RECORD_HEADER

    # A first record that leaves exactly 7 bytes in block 0 (a zero-length FIRST chunk there),
    # then one spanning three blocks (MIDDLE chunks), then a small one.
    first = b"a" * (BLOCK_SIZE - len(HEADER_BYTES) - 2 * RECORD_HEADER.size)
    payloads = [first, b"b" * (2 * BLOCK_SIZE + 100), b"c" * 10]
    log = tmp_path / "run-x.wandb"
    write_log(log, payloads)
    data = log.read_bytes()
    _crc, length, kind = RECORD_HEADER.unpack_from(data, BLOCK_SIZE - RECORD_HEADER.size)
    assert (length, kind) == (0, 2), "a zero-length FIRST chunk in the last 7 bytes"
    contents = read_log(log)
    assert contents.payloads == payloads and not contents.torn
    for cut in (len(data) - 5, 2 * BLOCK_SIZE, BLOCK_SIZE + 3):  # what a SIGKILL leaves
        torn = tmp_path / f"torn-{cut}.wandb"
        torn.write_bytes(data[:cut])
        contents = read_log(torn)
        assert contents.torn and contents.payloads == payloads[: len(contents.payloads)]


def test_cut_back_keeps_every_complete_record_and_the_original(copy: Path) -> None:
    from aexp.wandb_offline import read_log
    from aexp.wandb_offline.mend import cut_back

    log = all_logs(copy)[-1]
    original = log.read_bytes()
    whole = read_log(log).payloads
    log.write_bytes(original[: len(original) - 40])

    dropped = cut_back(log)

    contents = read_log(log)
    assert not contents.torn and contents.payloads == whole[: len(contents.payloads)]
    assert dropped == len(original) - 40 - log.stat().st_size > 0
    assert log.with_name(log.name + ".torn").read_bytes() == original[: len(original) - 40]
    assert cut_back(log) == 0, "a log that is not torn is left as it is"


def test_inspect_run_places_missing_rows_and_trusts_the_document(
    copy: Path, sweep: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aexp.wandb_offline import repair

    p, run = sweep.ids["p"], sweep.runs["p"]
    job = copy / "workspace" / p
    first, second = fragments(copy, p)
    log1 = first / f"run-{run}.wandb"
    log1.write_bytes(log1.read_bytes()[:7])
    journal = journal_of(copy, p)

    found = repair.inspect_run(job, p, run, journal)

    assert found.set_aside == [log1.with_name(log1.name + ".empty")]
    assert [view.folder for view in found.fragments] == [second]
    history = [row.step for row in journal.history()]
    assert [row.step for row in found.missing] == history[: history.index(3)]
    ((after, rows),) = found.gaps()
    assert after == -1 and [row.step for row in rows] == [0, 1, 2]
    assert found.start_between(-1) < found.fragments[0].start
    assert found.notes() and "held no run" in found.notes()[0]

    # A fragment the document records is not decoded again.
    known = {second.name: repair.describe(found.fragments[0])}
    monkeypatch.setattr(repair, "read_fragment", lambda folder: pytest.fail(f"decoded {folder}"))
    again = repair.inspect_run(job, p, run, journal, known=known)
    assert again.fragments[0].synced and again.notes() == []
    assert [row.step for row in again.missing] == [0, 1, 2]
