"""A real MLflow tracking server on loopback, and empty sqlite stores, for the tests and benchmarks.

Everything MLflow writes stays in the directory given: HOME, TMPDIR, XDG dirs, the database, the
artifact store. Its usage telemetry is off (MLFLOW_DISABLE_TELEMETRY, DO_NOT_TRACK), the server
binds 127.0.0.1 only, and its background job runner (a pool of worker processes MLflow 3.17
starts by default) is switched off. The server is stopped by pid: every process of its tree.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def mlflow_env(root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) without MLFLOW_* variables, plus the ones above and HOME,
    TMPDIR and the XDG directories inside `root`."""
    env = {k: v for k, v in (base or os.environ).items() if not k.startswith("MLFLOW_")}
    home, tmp = root / "home", root / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(
        MLFLOW_ENV,
        HOME=str(home),
        TMPDIR=str(tmp),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
    )
    return env


def make_empty_store(path: Path, root: Path) -> Path:
    """Create an empty, fully migrated MLflow sqlite database at `path` (~8-10 s: MLflow runs
    its schema migrations), in a subprocess with the hermetic environment of `root`.

    Copying this file is the fast way to a fresh store (a copy is a new, empty store).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys; from mlflow.tracking import MlflowClient; "
        "MlflowClient(tracking_uri='sqlite:///' + sys.argv[1]).search_experiments()"
    )
    subprocess.run(
        [PYTHON, "-c", code, str(path)],
        cwd=root,
        env=mlflow_env(root),
        check=True,
        capture_output=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return path


def copy_store(template: Path, path: Path) -> str:
    """A fresh store at `path` (a copy of `template`); returns its tracking URI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first found, then theirs), from /proc."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.append(child)
                    todo.append(child)
    return found


def stop_tree(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM `pid` and every process below it, then SIGKILL what is left after `timeout`."""
    pids = [pid, *descendants(pid)]
    for target in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if not alive:
            return
        time.sleep(0.1)
    for target in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return False


@dataclass
class MlflowServer:
    """A running `mlflow server`; `uri` is its tracking URI, `log` its combined output."""

    process: subprocess.Popen
    uri: str
    root: Path
    log: Path
    started_in: float  # seconds from launch to the first healthy /health

    def requests(self, fragment: str) -> int:
        """How many requests whose access-log line holds `fragment` the server has answered."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return sum(1 for line in text.splitlines() if fragment in line and "HTTP/1.1" in line)

    def stop(self) -> None:
        stop_tree(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def start_server(root: Path, template: Path | None = None, timeout: float = 180.0) -> MlflowServer:
    """Start `mlflow server` on 127.0.0.1 with its store and artifacts in `root`; wait for
    `/health`. `template`: an empty migrated database to start from (saves the migrations)."""
    root.mkdir(parents=True, exist_ok=True)
    db = root / "server.db"
    if template is not None:
        shutil.copyfile(template, db)
    artifacts = root / "artifacts"
    port = free_port()
    log = root / "server.log"
    args = [
        PYTHON,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{db}",
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    t0 = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            args,
            cwd=root,
            env=mlflow_env(root),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    uri = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None or time.monotonic() - t0 > timeout:
            stop_tree(process.pid)
            raise RuntimeError(
                f"mlflow server did not answer /health within {timeout:.0f} s:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.2)
    return MlflowServer(process, uri, root, log, time.monotonic() - t0)


class BrokenMlflowServer:
    """A stand-in for an MLflow tracking server that fails, on 127.0.0.1 (stdlib only): what a
    real server does when its database is down or its proxy hangs, which a real `mlflow server`
    cannot be made to do on purpose.

    `mode`: "error500" answers every API request with 500; "hang" reads it and never answers
    (until `stop()`). `health`: how `/health` is answered: "ok" (200: the server looks alive, the
    API fails), or like the API ("same"). Every request is counted in `requests` (its path).
    """

    def __init__(self, mode: str, health: str = "ok") -> None:
        import http.server
        import threading

        self.mode, self.health = mode, health
        self.requests: list[str] = []
        self._stop = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append(self.path)
                fails = outer.mode if (self.path != "/health" or outer.health == "same") else ""
                if fails == "hang":
                    outer._stop.wait(600)
                    self.close_connection = True
                    return
                status, body = (
                    (500, b'{"error_code": "INTERNAL_ERROR"}')
                    if fails
                    else (
                        200,
                        b"OK",
                    )
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.uri = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> BrokenMlflowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
