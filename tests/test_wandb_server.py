"""Tests of the fake W&B server against the real wandb client and `wandb sync`.

Offline runs are made by the real ``wandb.init(mode="offline")`` in a
subprocess and uploaded by a real ``wandb sync`` subprocess, both with the
hermetic environment of ``wandb_env`` (base URL on 127.0.0.1, fake key,
every directory in ``tmp_path``).  Every subprocess has a timeout.

Success of ``wandb sync`` is judged by the ``run-<id>.wandb.synced`` marker
and by what the server received -- never by the exit code, which is 0 even
when nothing was uploaded.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

# wandb is not imported here (importing it makes temp dirs outside tmp_path):
# the real client only runs in subprocesses, with the hermetic environment.
needs_wandb = pytest.mark.skipif(
    importlib.util.find_spec("wandb") is None, reason="wandb is not installed"
)

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from wandb_server import FAKE_API_KEY, FakeWandbServer, wandb_env  # noqa: E402

SUBPROCESS_TIMEOUT = 120.0

# Makes offline runs with the real client.  argv[1]: JSON list of runs.
_MAKE_RUNS = r"""
import json, sys
import wandb

for spec in json.loads(sys.argv[1]):
    run = wandb.init(
        mode="offline",
        dir=spec["dir"],
        id=spec["id"],
        project=spec.get("project", "p"),
        group=spec.get("group"),
        tags=spec.get("tags"),
        config=spec.get("config"),
        notes=spec.get("notes"),
        resume=spec.get("resume"),
    )
    for loss in spec.get("losses", []):
        run.log({"loss": loss})
    for key, value in spec.get("summary", {}).items():
        run.summary[key] = value
    print("console line from", run.id, flush=True)
    run.finish(exit_code=spec.get("exit_code", 0))
    print("RUN_DIR=" + str(__import__("pathlib").Path(run.dir).parent), flush=True)
"""


@dataclass
class Result:
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    seconds: float


def run_bounded(args: list[str], env: dict[str, str], timeout: float) -> Result:
    """Run a command in its own process group; on timeout, kill the group."""
    start = time.monotonic()
    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # wandb and its wandb-core child
        out, err = proc.communicate()
        code = None
    return Result(code, out, err, time.monotonic() - start)


def make_offline_runs(env: dict[str, str], specs: list[dict]) -> list[Path]:
    """Create offline runs (one process for all specs); returns run dirs."""
    res = run_bounded(
        [sys.executable, "-c", _MAKE_RUNS, json.dumps(specs)], env, SUBPROCESS_TIMEOUT
    )
    assert res.returncode == 0, res.stderr
    dirs = [
        Path(line[len("RUN_DIR=") :])
        for line in res.stdout.splitlines()
        if line.startswith("RUN_DIR=")
    ]
    assert len(dirs) == len(specs), res.stdout
    return dirs


def wandb_sync(env: dict[str, str], *paths: Path, timeout: float = SUBPROCESS_TIMEOUT) -> Result:
    return run_bounded([sys.executable, "-m", "wandb", "sync", *map(str, paths)], env, timeout)


def synced_marker(run_dir: Path, run_id: str) -> Path:
    return run_dir / f"run-{run_id}.wandb.synced"


@pytest.fixture
def server():
    with FakeWandbServer() as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path, server: FakeWandbServer) -> dict[str, str]:
    return wandb_env(tmp_path, server.base_url)


# -- against the real client ------------------------------------------------


@pytest.mark.wandb
@needs_wandb
def test_sync_uploads_offline_run(tmp_path, server, env):
    [run_dir] = make_offline_runs(
        env,
        [
            {
                "dir": str(tmp_path / "runs"),
                "id": "abc12345",
                "group": "H012/E018/full",
                "tags": ["hyp:H012", "exp:E018"],
                "config": {"lr": 0.1, "layers": [1, 2], "opt": {"name": "adam"}},
                "notes": "a note",
                "losses": [1.0, 0.5, 0.25],
                "summary": {"best": 0.25},
            }
        ],
    )
    assert run_dir.name.startswith("offline-run-") and run_dir.name.endswith("-abc12345")
    assert server.requests == [], "an offline run must not talk to the server"

    res = wandb_sync(env, run_dir)

    assert res.returncode == 0, res.stderr
    marker = synced_marker(run_dir, "abc12345")
    assert marker.exists() and marker.stat().st_size == 0
    assert (run_dir / "run-abc12345.wandb.syncstate").exists()

    run = server.runs()["abc12345"]
    assert run["project"] == "p"
    assert run["entity"] == FakeWandbServer.entity
    assert run["group"] == "H012/E018/full"
    assert run["tags"] == ["hyp:H012", "exp:E018"]
    assert run["notes"] == "a note"
    config = {k: v for k, v in run["config"].items() if k != "_wandb"}
    assert config == {"lr": 0.1, "layers": [1, 2], "opt": {"name": "adam"}}
    assert [row["_step"] for row in run["history"]] == [0, 1, 2]
    assert [row["loss"] for row in run["history"]] == [1.0, 0.5, 0.25]
    assert run["history_file"] == run["history"]
    assert run["summary"]["best"] == 0.25 and run["summary"]["loss"] == 0.25
    assert run["exitcode"] == 0 and run["complete"]
    assert {"config.yaml", "wandb-summary.json", "wandb-metadata.json"} <= set(run["files"])
    assert any("console line from abc12345" in line for line in run["output"])
    assert run["uploads"] == 1

    ops = server.graphql_operations()
    assert ops.count("UpsertBucket") == 2 and "CreateRunFiles" in ops
    assert set(ops) <= {"UpsertBucket", "CreateRunFiles", "ServerFeaturesQuery"}, ops
    for req in server.requests:
        assert req.status == 200, (req.method, req.path, req.status)
        assert not req.path.startswith("/sdk/otel"), "telemetry should be off"
        assert req.headers.get("User-Agent") == "wandb-core"
    graphql = [r for r in server.requests if r.path == "/graphql"]
    auth = "Basic " + base64.b64encode(f"api:{FAKE_API_KEY}".encode()).decode()
    assert all(r.headers.get("Authorization") == auth for r in graphql)


@pytest.mark.wandb
@needs_wandb
def test_nonzero_exit_code_arrives(tmp_path, server, env):
    [run_dir] = make_offline_runs(
        env,
        [{"dir": str(tmp_path / "runs"), "id": "exit0003", "losses": [1.0], "exit_code": 3}],
    )
    wandb_sync(env, run_dir)
    assert synced_marker(run_dir, "exit0003").exists()
    assert server.runs()["exit0003"]["exitcode"] == 3


@pytest.mark.wandb
@needs_wandb
@pytest.mark.parametrize("mode", ["error500", "error429"])
def test_http_errors_leave_no_marker(tmp_path, server, env, mode):
    [run_dir] = make_offline_runs(
        env, [{"dir": str(tmp_path / "runs"), "id": "err00001", "losses": [1.0]}]
    )
    server.set_mode(mode)

    res = wandb_sync(env, run_dir)

    # Observed with wandb 0.31: exit code 0 although nothing was uploaded,
    # after ~3 s (1 try + WANDB__GRAPHQL_RETRY_MAX=2 retries, waits <= 1 s).
    assert res.returncode == 0
    assert not synced_marker(run_dir, "err00001").exists()
    assert (run_dir / "run-err00001.wandb.syncstate").exists()
    assert server.graphql_operations() == ["UpsertBucket"] * 3
    assert server.runs() == {}
    assert res.seconds < 60


@pytest.mark.wandb
@needs_wandb
def test_refused_connections_leave_no_marker(tmp_path, server, env):
    [run_dir] = make_offline_runs(
        env, [{"dir": str(tmp_path / "runs"), "id": "ref00001", "losses": [1.0]}]
    )
    server.set_mode("refuse")

    res = wandb_sync(env, run_dir)

    assert res.returncode == 0  # observed; not a success signal
    assert not synced_marker(run_dir, "ref00001").exists()
    assert server.requests == []
    assert res.seconds < 60


@pytest.mark.wandb
@needs_wandb
def test_hanging_server_sync_killed_by_timeout(tmp_path, server, env):
    [run_dir] = make_offline_runs(
        env, [{"dir": str(tmp_path / "runs"), "id": "hang0001", "losses": [1.0]}]
    )
    server.set_mode("hang")

    res = wandb_sync(env, run_dir, timeout=5)

    assert res.returncode is None, "wandb sync should still be waiting"
    assert not synced_marker(run_dir, "hang0001").exists()
    assert [(r.operation, r.status) for r in server.requests][:1] == [("UpsertBucket", None)]
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 3


@pytest.mark.wandb
@needs_wandb
def test_one_run_fails_while_others_sync(tmp_path, server, env):
    runs = str(tmp_path / "runs")
    bad_dir, good_dir = make_offline_runs(
        env,
        [
            {"dir": runs, "id": "bad00001", "losses": [1.0, 2.0]},
            {"dir": runs, "id": "good0001", "losses": [3.0, 4.0]},
        ],
    )
    server.set_mode("error500", for_run_ids={"bad00001"})

    wandb_sync(env, bad_dir, good_dir)

    assert not synced_marker(bad_dir, "bad00001").exists()
    assert synced_marker(good_dir, "good0001").exists()
    assert set(server.runs()) == {"good0001"}
    assert [r["loss"] for r in server.runs()["good0001"]["history"]] == [3.0, 4.0]


@pytest.mark.wandb
@needs_wandb
def test_marker_written_even_when_history_upload_fails(tmp_path, server, env):
    """The .synced marker only means the run was created on the server.

    Observed with wandb 0.31: if every file_stream request fails (history,
    summary, exit code lost), or every file upload fails, `wandb sync` still
    writes the marker and exits 0.  Only the server's view (or ERROR lines in
    WANDB_DIR/wandb/logs/debug-sync.*.log) shows the loss.
    """
    [run_dir] = make_offline_runs(
        env, [{"dir": str(tmp_path / "runs"), "id": "fsfail01", "losses": [1.0, 2.0]}]
    )
    server.set_mode("error500", when=lambda r: r.path.endswith("/file_stream"))

    res = wandb_sync(env, run_dir)

    assert res.returncode == 0
    assert synced_marker(run_dir, "fsfail01").exists()  # despite the failure
    run = server.runs()["fsfail01"]
    assert run["history"] == [] and run["exitcode"] is None
    logs = list((Path(env["WANDB_DIR"]) / "wandb" / "logs").glob("debug-sync.*.log"))
    levels = [json.loads(line)["level"] for log in logs for line in log.read_text().splitlines()]
    assert any(level.startswith("ERROR") for level in levels)


@pytest.mark.wandb
@needs_wandb
def test_fragments_of_one_run_id(tmp_path, server, env):
    """Two offline inits with one id, >1 s apart, synced by one `wandb sync`.

    They are separate folders (offline-run-<start time>-<id>); `wandb sync`
    uploads them one after the other in start-time order, whatever the order
    of its arguments, each as a complete upload (UpsertBucket, file_stream,
    files, exitcode).  Without resume, the second fragment's steps restart at
    0 and its history is appended at the offset the server reported
    (historyLineCount from UpsertBucket).
    """
    runs = str(tmp_path / "runs")
    [first] = make_offline_runs(env, [{"dir": runs, "id": "frag0001", "losses": [1.0, 2.0, 3.0]}])
    time.sleep(1.1)  # folder names have 1 s resolution
    [second] = make_offline_runs(env, [{"dir": runs, "id": "frag0001", "losses": [4.0, 5.0]}])
    assert first != second

    wandb_sync(env, second, first)  # reversed on purpose

    assert synced_marker(first, "frag0001").exists()
    assert synced_marker(second, "frag0001").exists()
    run = server.runs()["frag0001"]
    assert run["uploads"] == 2
    assert [r["loss"] for r in run["history"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [r["_step"] for r in run["history"]] == [0, 1, 2, 0, 1]
    assert run["history_file"] == run["history"]
    assert server.graphql_operations().count("UpsertBucket") == 4


@pytest.mark.wandb
@needs_wandb
def test_resumed_fragment_continues_steps(tmp_path, server, env):
    """With resume="allow" on the second fragment, `wandb sync` asks
    RunResumeStatus and renumbers the fragment's steps after the last step
    the server holds (from historyTail)."""
    runs = str(tmp_path / "runs")
    [first] = make_offline_runs(env, [{"dir": runs, "id": "frag0002", "losses": [1.0, 2.0, 3.0]}])
    time.sleep(1.1)
    [second] = make_offline_runs(
        env, [{"dir": runs, "id": "frag0002", "losses": [4.0, 5.0], "resume": "allow"}]
    )

    wandb_sync(env, first, second)

    assert synced_marker(second, "frag0002").exists()
    run = server.runs()["frag0002"]
    assert [r["_step"] for r in run["history"]] == [0, 1, 2, 3, 4]
    assert [r["loss"] for r in run["history"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert "RunResumeStatus" in server.graphql_operations()


# -- the server alone (no wandb) ----------------------------------------------


def _post(url: str, body: dict, timeout: float = 5.0) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_refuse_keeps_port_and_recovers():
    with FakeWandbServer() as srv:
        port = srv.port
        srv.set_mode("refuse")
        start = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert time.monotonic() - start < 1
        srv.set_mode("ok")
        assert srv.port == port
        status, data = _post(
            srv.base_url + "/graphql",
            {"operationName": "Viewer", "query": "query Viewer { viewer { id } }"},
        )
        assert status == 200 and data["data"]["viewer"]["entity"] == srv.entity


def test_hang_then_stop_returns_promptly():
    srv = FakeWandbServer().start()
    srv.set_mode("hang")
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        _post(srv.base_url + "/graphql", {"query": "query Viewer { viewer { id } }"}, timeout=0.5)
    assert srv.requests[0].operation == "Viewer" and srv.requests[0].status is None
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 2


def test_runs_view_decodes_and_dedupes_retries():
    with FakeWandbServer() as srv:
        fs = srv.base_url + "/files/e/p/r1/file_stream"
        upsert = {
            "operationName": "UpsertBucket",
            "query": "mutation UpsertBucket($name: String) { upsertBucket { bucket { id } } }",
            "variables": {
                "name": "r1",
                "project": "p",
                "groupName": "g",
                "tags": ["a"],
                "config": json.dumps({"lr": {"value": 0.5}, "_wandb": {"value": {}}}),
            },
        }
        assert _post(srv.base_url + "/graphql", upsert)[0] == 200
        rows = [json.dumps({"_step": i, "x": i}) for i in range(3)]
        chunk = {"files": {"wandb-history.jsonl": {"offset": 0, "content": rows[:2]}}}
        srv.set_mode("error500", when=lambda r: r.path.endswith("file_stream"))
        assert _post(fs, chunk)[0] == 500  # not accepted: does not count
        srv.set_mode("ok")
        assert _post(fs, chunk) == (200, {"exitcode": None, "limits": {}})
        assert _post(fs, chunk)[0] == 200  # a resend of the same offset
        last = {
            "files": {"wandb-history.jsonl": {"offset": 2, "content": rows[2:]}},
            "complete": True,
            "exitcode": 1,
        }
        assert _post(fs, last)[0] == 200
        run = srv.runs()["r1"]
        assert run["config"] == {"lr": 0.5, "_wandb": {}}
        assert (run["group"], run["tags"], run["project"]) == ("g", ["a"], "p")
        assert [r["_step"] for r in run["history"]] == [0, 1, 2]
        assert (run["exitcode"], run["complete"]) == (1, True)
