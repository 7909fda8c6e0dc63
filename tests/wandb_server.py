"""A fake Weights & Biases server for tests -- a stand-in for W&B's cloud.

W&B's cloud service cannot run here (tests have no network and there is no
self-hosted W&B server), so this module is a TEST STAND-IN for it: a small
HTTP server on 127.0.0.1, stdlib only (``http.server`` in a background
thread), that speaks just enough of the W&B protocol for the real
``wandb sync`` CLI of wandb 0.31 (which uploads through its Go
``wandb-core`` service) to upload offline runs successfully.  It is not a
W&B server; it keeps only what the tests need.

What ``wandb sync`` (0.31) sends, and what this server answers:

* ``POST /graphql``, dispatched on ``operationName``:
  ``UpsertBucket`` (twice per synced file: first creating the run with
  group, tags, notes, host, program and the initial config, then with the
  full config; answered with the run's ``historyLineCount`` here, at which
  offset wandb then appends history), ``CreateRunFiles`` (answered with
  upload URLs pointing back here), ``ServerFeaturesQuery`` (when the run
  has console output; no features), ``RunResumeStatus`` (only for runs
  created with ``resume=...``; answered from what this server holds for
  the run, ``bucket: null`` if nothing; wandb-core resumes the step axis
  after the last ``_step`` of ``historyTail``).  A run that logged an
  artifact adds ``CreateArtifact``, ``CreateArtifactManifest`` (twice),
  ``CreateArtifactFiles`` (answered with upload URLs
  ``/_artifact/<N>/<file>`` pointing back here) and ``CommitArtifact``;
  without answers to these wandb-core 0.31 crashes on the run.
  ``Viewer``, ``ServerInfo``, ``MarkRunFilesUploaded`` and ``UseArtifact``
  are answered too; unknown operations get ``{"data": {}}``.
* ``POST /files/<entity>/<project>/<run>/file_stream``: history, summary,
  console output, and at the end ``{"complete": true, "exitcode": N}``;
  answered ``{"exitcode": null, "limits": {}}``.
* ``PUT /_upload/<entity>/<project>/<run>/<file>``: run files
  (``config.yaml``, ``wandb-summary.json``, ``wandb-metadata.json``,
  ``requirements.txt``, ...).
* ``PUT /_artifact/<N>/<file>``: an artifact's files and its
  ``wandb_manifest.json``.
* ``POST /sdk/otel/v1/metrics``: wandb's telemetry (protobuf; not sent
  when ``WANDB_ERROR_REPORTING=false``); answered 200 and recorded.

Every request is recorded in :attr:`FakeWandbServer.requests`;
:meth:`FakeWandbServer.runs` decodes them into per-run views (config, tags,
group, history rows, summary, exitcode, uploaded files).  The server can be
told to fail (:meth:`FakeWandbServer.set_mode`): answer 500 or 429, hang
without answering, or refuse connections -- for everything, or only for
requests that concern chosen run ids.

:func:`wandb_env` builds the hermetic environment that every wandb process
run against this server must get: wandb phones home by default (to
api.wandb.ai, plus telemetry), so the base URL, a fake API key, and all of
wandb's directories are pointed at loopback and a temp dir.

Judging a sync (observed with wandb 0.31): the exit code of ``wandb sync``
is no signal (0 even when nothing was uploaded).  Without an empty
``run-<id>.wandb.synced`` marker beside the ``.wandb`` file the run was not
uploaded (every attempt, failed or not, writes ``run-<id>.wandb.syncstate``).
But the marker only proves that the run was *created*: it is written even
when every file_stream request (history, summary, exit code) or every file
upload failed.  The server's view (:meth:`FakeWandbServer.runs`) or ERROR
lines in ``$WANDB_DIR/wandb/logs/debug-sync.*.log`` show such losses.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.server
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FAKE_API_KEY",
    "MODES",
    "FakeWandbServer",
    "RecordedRequest",
    "wandb_env",
]

#: A syntactically valid W&B API key: wandb 0.31 wants 40+ characters from
#: [A-Za-z0-9_] (optionally after a "prefix-").  Never valid anywhere real.
FAKE_API_KEY = "x" * 40

#: The failure modes of :meth:`FakeWandbServer.set_mode`.
MODES = ("ok", "error500", "error429", "hang", "refuse")

_FILE_STREAM_RE = re.compile(r"^/files/([^/]+)/([^/]+)/([^/]+)/file_stream$")
_UPLOAD_RE = re.compile(r"^/_upload/([^/]+)/([^/]+)/([^/]+)/(.+)$")
_ARTIFACT_UPLOAD_RE = re.compile(r"^/_artifact/(\d+)/(.+)$")
# The public API's queries about a run: answered from what the server holds, never changing it.
_QUERIES = ("run", "runstate", "runhistorykeys", "runoutputartifacts")
_QUERY_NAMES = ("Run", "RunState", "RunHistoryKeys", "RunOutputArtifacts")
_OPERATION_RE = re.compile(r"\b(?:query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class RecordedRequest:
    """One HTTP request as the server received it."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]
    body: bytes  # after undoing gzip/deflate Content-Encoding
    json: Any = None  # the parsed body, or None if it was not JSON
    operation: str | None = None  # GraphQL operation name, if any
    run_id: str | None = None  # the run this request concerns, if any
    status: int | None = None  # HTTP status answered; None = not answered
    time: float = field(default_factory=time.time)

    @property
    def variables(self) -> dict[str, Any]:
        """The GraphQL variables (empty for other requests)."""
        if isinstance(self.json, dict) and isinstance(self.json.get("variables"), dict):
            return self.json["variables"]
        return {}

    @property
    def ok(self) -> bool:
        """Whether the server accepted the request (answered 2xx)."""
        return self.status is not None and 200 <= self.status < 300


class _Drop(Exception):
    """Close the connection without answering."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Go client expects
    server_version = "FakeWandb/0.1"
    fake: FakeWandbServer  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
            body = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        return body

    def _handle(self) -> None:
        fake = self.fake
        if fake._refusing_all():  # a request on a kept-alive connection
            self._drop()
            return
        split = urlsplit(self.path)
        body = self._read_body()
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                parsed = None
        rec = RecordedRequest(
            method=self.command,
            path=split.path,
            query=split.query,
            headers=dict(self.headers.items()),
            body=body,
            json=parsed,
        )
        rec.operation = _operation_name(rec)
        rec.run_id = _run_id_of(rec) or fake._artifact_run_id(rec)
        fake._record(rec)

        if fake.delay and rec.run_id is not None and rec.operation not in _QUERY_NAMES:
            time.sleep(fake.delay)
        try:
            failure = fake._failure_for(rec)
            if failure == "refuse":
                raise _Drop
            if failure == "hang":
                fake._hang_until_released()
                raise _Drop
            if failure == "error500":
                self._send_json(500, {"errors": [{"message": "fake W&B: 500"}]}, rec)
            elif failure == "error429":
                self._send_json(429, {"errors": [{"message": "fake W&B: 429"}]}, rec)
            else:
                status, payload = fake._respond(rec)
                self._send_json(status, payload, rec)
        except _Drop:
            self._drop()

    def _send_json(self, status: int, payload: Any, rec: RecordedRequest) -> None:
        data = json.dumps(payload).encode()
        # Set before answering, so a client that has its answer (and may
        # exit at once) never sees a test read a not-yet-updated record.
        rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _drop(self) -> None:
        """Make the connection close with a reset once the handler ends."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients hanging up; report anything else."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def cut_connections(self) -> None:
        """Shut down every open connection; their handler threads then end."""
        with self.connections_lock:
            conns = list(self.open_connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class FakeWandbServer:
    """A W&B stand-in on 127.0.0.1 for tests; see the module docstring.

    ``with FakeWandbServer() as srv: ...`` or
    ``srv = FakeWandbServer().start(); ...; srv.stop()``.
    """

    #: The entity reported by Viewer and used when a client sends none.
    entity = "fake-entity"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.mode: str = "ok"
        self.fail_run_ids: set[str] | None = None
        self.fail_when: Callable[[RecordedRequest], bool] | None = None
        #: Seconds every answer about a run's data (history, files, artifacts) waits: an upload
        #: then takes long enough to be interrupted at a random moment.
        self.delay: float = 0.0
        self.port: int = 0
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._placeholder: socket.socket | None = None  # port kept while refusing
        self._release = threading.Event()  # set: hanging requests give up
        self._started = False
        self._stopped = threading.Event()

    # -- lifecycle -----------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``WANDB_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeWandbServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._started:
            raise RuntimeError("FakeWandbServer already started")
        self._started = True
        if self._refusing_all():
            self._placeholder = _reserve_port(0)
            self.port = self._placeholder.getsockname()[1]
        else:
            self._listen()
        return self

    def stop(self) -> None:
        """Stop serving and close all connections; returns promptly even
        while requests are hanging."""
        self._stopped.set()
        with self._lock:
            self._release.set()
        self._unlisten()
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    def __enter__(self) -> FakeWandbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        httpd = _HTTPServer(("127.0.0.1", self.port), handler, bind_and_activate=False)
        try:
            httpd.server_bind()  # SO_REUSEADDR: may share the port with the placeholder
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None
            httpd.server_activate()
        except BaseException:
            httpd.server_close()
            raise
        self.port = httpd.server_address[1]
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeWandbServer:{self.port}",
            daemon=True,
        )
        self._httpd, self._thread = httpd, thread
        thread.start()

    def _unlisten(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.cut_connections()
        if thread is not None:
            thread.join(timeout=5)

    # -- failure modes -------------------------------------------------

    def set_mode(
        self,
        mode: str,
        *,
        for_run_ids: set[str] | None = None,
        when: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Choose how the server answers from now on.

        ``"ok"``        answer normally.
        ``"error500"``  answer HTTP 500.
        ``"error429"``  answer HTTP 429 (rate limited), without Retry-After.
        ``"hang"``      read the request, record it, never answer; the
                        connection is dropped when the mode changes or at
                        ``stop()``.
        ``"refuse"``    refuse connections: the listening socket is closed and
                        the port kept by a bound socket that does not listen,
                        so connects fail at once with ECONNREFUSED; open
                        kept-alive connections are cut.  Back to another mode,
                        the server listens on the same port again.

        ``for_run_ids``: fail only requests that concern these run ids
        (UpsertBucket/RunResumeStatus naming the run, CreateRunFiles and
        MarkRunFilesUploaded for it, its file_stream and uploads); all others
        are answered normally, so one run can fail while others sync.

        ``when``: fail only requests for which ``when(request)`` is true
        (e.g. ``lambda r: r.path.endswith("/file_stream")``); combines with
        ``for_run_ids``.  With ``for_run_ids`` or ``when``, ``"refuse"``
        resets the chosen requests' connections unanswered (the server keeps
        listening for the others).
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        with self._lock:
            self.mode = mode
            self.fail_run_ids = set(for_run_ids) if for_run_ids is not None else None
            self.fail_when = when
            self._release.set()  # requests hanging under the old mode give up
            self._release = threading.Event()
        if not self._started or self._stopped.is_set():
            return
        if self._refusing_all():
            if self._httpd is not None:
                port = self.port
                self._unlisten()
                self._placeholder = _reserve_port(port)
        elif self._httpd is None:
            self._listen()

    def _refusing_all(self) -> bool:
        return self.mode == "refuse" and self.fail_run_ids is None and self.fail_when is None

    def _failure_for(self, rec: RecordedRequest) -> str | None:
        with self._lock:
            mode, ids, when = self.mode, self.fail_run_ids, self.fail_when
        if mode == "ok" or (ids is not None and rec.run_id not in ids):
            return None
        if when is not None and not when(rec):
            return None
        return mode

    def _hang_until_released(self) -> None:
        with self._lock:
            release = self._release
        while not release.wait(0.1):
            if self._stopped.is_set():
                return

    # -- recording -----------------------------------------------------

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def graphql_operations(self) -> list[str]:
        """The GraphQL operation names received, in order."""
        with self._lock:
            return [r.operation for r in self.requests if r.operation is not None]

    def clear(self) -> None:
        """Forget all recorded requests (and so all runs)."""
        with self._lock:
            self.requests.clear()

    # -- protocol ------------------------------------------------------

    def _respond(self, rec: RecordedRequest) -> tuple[int, Any]:
        if rec.path == "/graphql" and rec.method == "POST":
            return 200, {"data": self._graphql_data(rec)}
        if _FILE_STREAM_RE.match(rec.path) and rec.method == "POST":
            return 200, {"exitcode": None, "limits": {}}
        if (
            _UPLOAD_RE.match(rec.path) or _ARTIFACT_UPLOAD_RE.match(rec.path)
        ) and rec.method == "PUT":
            return 200, {}
        if rec.path.startswith("/sdk/otel/"):
            return 200, {}
        return 404, {"error": f"fake W&B server: no route for {rec.method} {rec.path}"}

    def _graphql_data(self, rec: RecordedRequest) -> dict[str, Any]:
        op = (rec.operation or "").lower()
        v = rec.variables
        entity = v.get("entity") or self.entity
        project = v.get("project") or "uncategorized"
        if op == "viewer":
            return {
                "viewer": {
                    "id": "VXNlcjox",
                    "entity": self.entity,
                    "username": "fake-user",
                    "email": "fake@example.invalid",
                    "admin": False,
                    "flags": "{}",
                    "teams": {"edges": []},
                }
            }
        if op in ("serverinfo", "serverfeaturesquery"):
            return {
                "serverInfo": {
                    "features": [],
                    "latestLocalVersionInfo": None,
                    "cliVersionInfo": {},
                }
            }
        if op == "upsertbucket":
            name = v.get("name") or v.get("id") or "run"
            state = self._collect(before=rec).get(name)
            return {
                "upsertBucket": {
                    "bucket": {
                        "id": f"run:{name}",
                        "name": name,
                        "displayName": v.get("displayName") or name,
                        "description": v.get("description"),
                        "config": v.get("config") or "{}",
                        "sweepName": v.get("sweep"),
                        "historyLineCount": len(state.history_file) if state else 0,
                        "project": _project(entity, project),
                    },
                    "inserted": state is None or not state.upserted,
                }
            }
        if op == "runresumestatus":
            model = _project(entity, project)
            state = self._collect(before=rec).get(v.get("name") or "")
            if state is None or not state.upserted:
                return {"model": {**model, "bucket": None}}
            lines = [state.history_file[k] for k in sorted(state.history_file)]
            wandb_t = (state.config_raw.get("_wandb") or {}).get("value", {}).get("t")
            return {
                "model": {
                    **model,
                    "bucket": {
                        "id": f"run:{v['name']}",
                        "name": v["name"],
                        "displayName": state.display_name or v["name"],
                        "summaryMetrics": json.dumps(state.summary),
                        "logLineCount": len(state.output_file),
                        "historyLineCount": len(lines),
                        "eventsLineCount": 0,
                        "historyTail": json.dumps(lines[-10:]),
                        "eventsTail": "[]",
                        "config": json.dumps(state.config_raw),
                        "tags": state.tags,
                        "notes": state.notes,
                        "wandbConfig": json.dumps({"t": wandb_t} if wandb_t else {}),
                    },
                }
            }
        if op == "createrunfiles":
            run = v.get("run") or "run"
            return {
                "createRunFiles": {
                    "runID": f"run:{run}",
                    "uploadHeaders": [],
                    "files": [
                        {
                            "name": name,
                            "uploadUrl": f"{self.base_url}/_upload/{entity}/{project}/{run}/{name}",
                        }
                        for name in v.get("files") or []
                    ],
                }
            }
        if op == "markrunfilesuploaded":
            return {"markRunFilesUploaded": {"success": True}}
        if op == "getdefaultentity":
            return {"viewer": {"id": "VXNlcjox", "entity": self.entity}}
        queried = self._run_query_data(rec, op, v)
        if queried is not None:
            return queried
        artifacts = self._artifact_data(rec, op, v)
        if artifacts is not None:
            return artifacts
        return {}

    def _run_query_data(
        self, rec: RecordedRequest, op: str, v: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Answers to the queries of wandb's public API about one run (`wandb.Api().run(path)`
        and what it asks next), from what this server holds: ``Run`` (the ``RunFragment``:
        state, historyLineCount, historyKeys with the last step, summary, config, tags),
        ``RunState``, ``RunHistoryKeys`` and ``RunOutputArtifacts`` (the artifacts the run
        logged, one node per committed version).  A run this server never received is
        ``run: null``, as W&B answers it."""
        if op not in _QUERIES:
            return None
        entity = v.get("entity") or self.entity
        project = v.get("project") or "uncategorized"
        name = v.get("name") or v.get("run") or ""
        states = self._collect(before=rec)
        state = states.get(name)
        if state is None or not state.upserted or (state.project or project) != project:
            return {"project": {**_project(entity, project), "run": None}}
        if op == "runoutputartifacts":
            nodes = []
            versions = self._versions(states)
            for number, artifact in sorted(state.artifacts.items()):
                if artifact["committed"]:
                    nodes.append(
                        _artifact_node(number, artifact, entity, project, versions[number])
                    )
            return {
                "project": {
                    "run": {
                        "artifacts": {
                            "totalCount": len(nodes),
                            "pageInfo": {
                                "__typename": "PageInfo",
                                "endCursor": None,
                                "hasNextPage": False,
                            },
                            "edges": [{"node": node} for node in nodes],
                        }
                    }
                }
            }
        lines = [json.loads(state.history_file[k]) for k in sorted(state.history_file)]
        steps = [line.get("_step") for line in lines if isinstance(line.get("_step"), int)]
        node = {
            "id": f"run:{name}",
            "projectId": "1",
            "tags": list(state.tags),
            "name": name,
            "displayName": state.display_name or name,
            "sweepName": None,
            "state": state.run_state(),
            "config": json.dumps(state.config_raw),
            "group": state.group,
            "jobType": state.job_type,
            "commit": None,
            "readOnly": False,
            "createdAt": "2026-01-01T00:00:00",
            "heartbeatAt": "2026-01-01T00:00:00",
            "description": None,
            "notes": state.notes,
            "systemMetrics": "{}",
            "summaryMetrics": json.dumps(state.summary),
            "historyLineCount": len(lines),
            "user": {"name": "fake-user", "username": "fake-user"},
            "historyKeys": {"lastStep": max(steps) if steps else -1, "keys": {}},
        }
        return {"project": {**_project(entity, project), "run": node}}

    @staticmethod
    def _versions(states: dict[str, _RunState]) -> dict[int, int]:
        """{artifact number: its version index}: versions count per artifact name, in the
        order the artifacts were created, as W&B numbers v0, v1, ..."""
        committed = sorted(
            (number, artifact["name"])
            for state in states.values()
            for number, artifact in state.artifacts.items()
            if artifact["committed"]
        )
        seen: dict[str, int] = {}
        versions = {}
        for number, name in committed:
            versions[number] = seen.get(name, 0)
            seen[name] = versions[number] + 1
        return versions

    def received(self) -> dict[str, dict[str, Any]]:
        """What each run received, counted, so a test can assert exactly-once: ``rows`` (the
        history rows the server holds: W&B's historyLineCount), ``steps`` (their ``_step``
        values, in order; a row sent twice appears twice), ``uploads`` (separate uploads of the
        run) and ``artifact_versions`` ({artifact name: versions committed})."""
        out = {}
        for run_id, view in self.runs().items():
            versions: dict[str, int] = {}
            for artifact in view["artifacts"]:
                if artifact["committed"]:
                    versions[artifact["name"]] = versions.get(artifact["name"], 0) + 1
            out[run_id] = {
                "rows": len(view["history_file"]),
                "steps": [row.get("_step") for row in view["history_file"]],
                "uploads": view["uploads"],
                "artifact_versions": versions,
            }
        return out

    def _artifact_data(
        self, rec: RecordedRequest, op: str, v: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Answers to the artifact operations of wandb-core's ArtifactSaver (a run that logged
        an artifact): CreateArtifact, CreateArtifactManifest, CreateArtifactFiles (upload URLs
        ``/_artifact/<N>/<file>`` pointing back here), CommitArtifact, UseArtifact.  Without
        them wandb-core 0.31 crashes (nil pointer) on the run's artifact.  The N-th
        CreateArtifact request creates artifact N (id: base64 of ``Artifact:N``)."""
        if op == "createartifact":
            number = self._artifact_number_of(rec)
            return {
                "createArtifact": {
                    "artifact": {
                        "id": _artifact_id(number),
                        "state": "PENDING",
                        "artifactSequence": {"latestArtifact": None},
                    }
                }
            }
        if op == "createartifactmanifest":
            number = _artifact_number(v.get("artifactID"))
            file: dict[str, Any] = {"id": f"manifest-file:{number}"}
            if v.get("includeUpload"):
                file["uploadUrl"] = f"{self.base_url}/_artifact/{number}/{v.get('name')}"
                file["uploadHeaders"] = []
            return {
                "createArtifactManifest": {
                    "artifactManifest": {"id": f"manifest:{number}", "file": file}
                }
            }
        if op == "createartifactfiles":
            edges = []
            for spec in (v.get("input") or {}).get("artifactFiles") or []:
                number = _artifact_number(spec.get("artifactID"))
                edges.append(
                    {
                        "node": {
                            "storagePath": f"artifacts/{number}/{spec.get('name')}",
                            "uploadUrl": f"{self.base_url}/_artifact/{number}/{spec.get('name')}",
                            "uploadHeaders": [],
                            "uploadMultipartUrls": None,
                            "artifact": {"id": spec.get("artifactID")},
                        }
                    }
                )
            return {"createArtifactFiles": {"files": {"edges": edges}}}
        if op == "commitartifact":
            return {"commitArtifact": {"artifact": {"id": v.get("artifactID"), "digest": ""}}}
        if op == "useartifact":
            return {"useArtifact": {"artifact": {"id": (v.get("input") or {}).get("artifactID")}}}
        return None

    def _artifact_number_of(self, rec: RecordedRequest) -> int:
        """1 + how many CreateArtifact requests were recorded before `rec`."""
        with self._lock:
            number = 0
            for other in self.requests:
                if (other.operation or "").lower() == "createartifact":
                    number += 1
                if other is rec:
                    break
        return number

    def _artifact_run_id(self, rec: RecordedRequest) -> str | None:
        """The run an artifact request concerns, from the CreateArtifact that made the artifact."""
        m = _ARTIFACT_UPLOAD_RE.match(rec.path)
        if m:
            number: int | None = int(m.group(1))
        else:
            op = (rec.operation or "").lower()
            if op == "createartifactfiles":
                files = (rec.variables.get("input") or {}).get("artifactFiles") or [{}]
                number = _artifact_number(files[0].get("artifactID"))
            elif op in ("commitartifact", "useartifact"):
                inp = rec.variables.get("input") or rec.variables
                number = _artifact_number(inp.get("artifactID"))
            else:
                return None
        if number is None:
            return None
        with self._lock:
            creates = [r for r in self.requests if (r.operation or "").lower() == "createartifact"]
        if not 0 < number <= len(creates):
            return None
        return (creates[number - 1].variables.get("input") or {}).get("runName") or None

    # -- derived views -------------------------------------------------

    def _collect(self, before: RecordedRequest | None = None) -> dict[str, _RunState]:
        """Replay the accepted (2xx) requests into per-run state."""
        with self._lock:
            requests = list(self.requests)
        states: dict[str, _RunState] = {}
        created = 0  # CreateArtifact requests so far: the N-th makes artifact N
        for rec in requests:
            if rec is before:
                break
            if (rec.operation or "").lower() == "createartifact":
                created += 1
            if rec.ok and rec.run_id is not None and (rec.operation or "").lower() not in _QUERIES:
                states.setdefault(rec.run_id, _RunState()).apply(rec, artifact_number=created)
        return states

    def runs(self) -> dict[str, dict[str, Any]]:
        """What the server accepted, per run id (only 2xx requests count).

        Each value: ``project``, ``entity``, ``group``, ``tags``, ``notes``,
        ``job_type``, ``display_name``; ``config`` (decoded ``{key: value}``,
        including wandb's own ``_wandb`` key); ``history`` (parsed rows, each
        with ``_step``, in arrival order; a row resent at the same offset by
        a retry counts once); ``history_file`` (the rows as a server that
        honours file_stream offsets would hold them -- differs from
        ``history`` when an upload restarts at offset 0, as a second,
        non-resumed fragment of a run does); ``summary`` (latest);
        ``exitcode`` (None until the final file_stream request);
        ``complete``; ``files`` (names uploaded by PUT); ``output`` (console
        lines); ``uploads`` (how many separate uploads of the run were seen:
        one per synced ``.wandb`` file); ``artifacts`` (the run's logged
        artifacts in creation order: ``name``, ``type``, ``files`` uploaded,
        ``manifest`` uploaded, ``committed``).
        """
        return {run_id: state.view() for run_id, state in self._collect().items()}


class _RunState:
    """One run as replayed from accepted requests."""

    def __init__(self) -> None:
        self.upserted = False
        self.project: str | None = None
        self.entity: str | None = None
        self.group: str | None = None
        self.tags: list[str] = []
        self.notes: str | None = None
        self.job_type: str | None = None
        self.display_name: str | None = None
        self.config_raw: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.exitcode: int | None = None
        self.complete = False
        self.files: list[str] = []
        # History per upload (offset -> line), and the file as a whole.
        self.uploads: list[dict[int, str]] = []
        self.upload_created = False  # the current upload sent its first upsert
        self.upload_complete = False  # ... and its final file_stream
        self.history_file: dict[int, str] = {}
        self.output_file: dict[int, str] = {}
        self.artifacts: dict[int, dict[str, Any]] = {}  # artifact number -> what arrived

    def apply(self, rec: RecordedRequest, artifact_number: int = 0) -> None:
        op = (rec.operation or "").lower()
        if op == "upsertbucket":
            self._apply_upsert(rec.variables)
            return
        if op == "createartifact":
            inp = rec.variables.get("input") or {}
            self.artifacts[artifact_number] = {
                "name": inp.get("artifactCollectionName"),
                "type": inp.get("artifactTypeName"),
                "files": [],
                "manifest": False,
                "committed": False,
            }
            return
        if op == "commitartifact":
            number = _artifact_number(
                (rec.variables.get("input") or rec.variables).get("artifactID")
            )
            if number in self.artifacts:
                self.artifacts[number]["committed"] = True
            return
        m = _ARTIFACT_UPLOAD_RE.match(rec.path)
        if m and rec.method == "PUT" and int(m.group(1)) in self.artifacts:
            artifact = self.artifacts[int(m.group(1))]
            if m.group(2).startswith("wandb_manifest"):
                artifact["manifest"] = True
            elif m.group(2) not in artifact["files"]:
                artifact["files"].append(m.group(2))
            return
        m = _FILE_STREAM_RE.match(rec.path)
        if m and isinstance(rec.json, dict):
            self.entity = self.entity or m.group(1)
            self.project = self.project or m.group(2)
            self._apply_file_stream(rec.json)
            return
        m = _UPLOAD_RE.match(rec.path)
        if m and rec.method == "PUT" and m.group(4) not in self.files:
            self.files.append(m.group(4))

    def _apply_upsert(self, v: dict[str, Any]) -> None:
        # Each synced .wandb file is one upload: it starts with an upsert
        # that creates the run (carrying host and program; a later upsert of
        # the same upload carries neither) and ends with a file_stream
        # request marked complete.
        creating = v.get("host") is not None or v.get("program") is not None
        if not self.uploads or self.upload_complete or (creating and self.upload_created):
            self.uploads.append({})
            self.upload_created = self.upload_complete = False
        self.upload_created = self.upload_created or creating
        self.upserted = True
        for attr, var in (
            ("project", "project"),
            ("entity", "entity"),
            ("group", "groupName"),
            ("notes", "notes"),
            ("job_type", "jobType"),
            ("display_name", "displayName"),
        ):
            if v.get(var) is not None:
                setattr(self, attr, v[var])
        if v.get("tags") is not None:
            self.tags = list(v["tags"])
        if v.get("config"):
            raw = v["config"]
            self.config_raw.update(json.loads(raw) if isinstance(raw, str) else raw)
        if v.get("summaryMetrics"):
            self.summary.update(json.loads(v["summaryMetrics"]))

    def _apply_file_stream(self, body: dict[str, Any]) -> None:
        if not self.uploads:
            self.uploads.append({})
        files = body.get("files") or {}
        hist = files.get("wandb-history.jsonl") or {}
        offset = int(hist.get("offset") or 0)
        for i, line in enumerate(hist.get("content") or []):
            self.uploads[-1][offset + i] = line
            self.history_file[offset + i] = line
        out = files.get("output.log") or {}
        offset = int(out.get("offset") or 0)
        for i, line in enumerate(out.get("content") or []):
            self.output_file[offset + i] = line
        summ = files.get("wandb-summary.json") or {}
        if summ.get("content"):
            self.summary = json.loads(summ["content"][-1])
        if body.get("exitcode") is not None:
            self.exitcode = body["exitcode"]
        if body.get("complete"):
            self.complete = self.upload_complete = True

    def run_state(self) -> str:
        """The run's state as W&B reports it: running until an upload sent its final
        file_stream request, then finished (exit code 0) or failed."""
        if not self.upload_complete:
            return "running"
        return "finished" if not self.exitcode else "failed"

    def view(self) -> dict[str, Any]:
        config = {
            k: (v["value"] if isinstance(v, dict) and "value" in v else v)
            for k, v in self.config_raw.items()
        }
        return {
            "project": self.project,
            "entity": self.entity,
            "group": self.group,
            "tags": list(self.tags),
            "notes": self.notes,
            "job_type": self.job_type,
            "display_name": self.display_name,
            "config": config,
            "history": [json.loads(upload[k]) for upload in self.uploads for k in sorted(upload)],
            "history_file": [json.loads(self.history_file[k]) for k in sorted(self.history_file)],
            "summary": dict(self.summary),
            "exitcode": self.exitcode,
            "complete": self.complete,
            "files": list(self.files),
            "output": [self.output_file[k] for k in sorted(self.output_file)],
            "uploads": len(self.uploads),
            "artifacts": [dict(self.artifacts[n]) for n in sorted(self.artifacts)],
        }


# -- helpers --------------------------------------------------------------


def _project(entity: str, project: str) -> dict[str, Any]:
    return {
        "id": f"project:{entity}/{project}",
        "name": project,
        "entity": {"id": f"entity:{entity}", "name": entity},
    }


def _artifact_node(
    number: int, artifact: dict[str, Any], entity: str, project: str, version: int
) -> dict[str, Any]:
    """One committed artifact as W&B's ``ArtifactFragment`` describes it."""
    project_info = {
        "id": f"project:{entity}/{project}",
        "internalId": "1",
        "name": project,
        "entity": {"name": entity},
    }
    return {
        "__typename": "Artifact",
        "id": _artifact_id(number),
        "artifactSequence": {
            "__typename": "ArtifactSequence",
            "name": artifact["name"],
            "project": project_info,
        },
        "versionIndex": version,
        "artifactType": {"name": artifact["type"] or "unspecified"},
        "description": None,
        "metadata": "{}",
        "ttlDurationSeconds": -1,
        "ttlIsInherited": True,
        "tags": [],
        "historyStep": None,
        "state": "COMMITTED",
        "size": 0,
        "digest": f"digest{number}",
        "digestAlgorithm": "MANIFEST_MD5",
        "commitHash": f"commit{number}",
        "fileCount": len(artifact["files"]),
        "createdAt": "2026-01-01T00:00:00",
        "updatedAt": None,
        "aliases": [],
    }


def _artifact_id(number: int) -> str:
    """W&B-style opaque id of the `number`-th artifact created (base64 of "Artifact:N")."""
    return base64.b64encode(f"Artifact:{number}".encode()).decode()


def _artifact_number(artifact_id: Any) -> int | None:
    try:
        kind, _, number = base64.b64decode(str(artifact_id)).decode().partition(":")
        return int(number) if kind == "Artifact" else None
    except (ValueError, UnicodeDecodeError):
        return None


def _reserve_port(port: int) -> socket.socket:
    """Bind without listening: connects are refused, the port stays ours."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def _operation_name(rec: RecordedRequest) -> str | None:
    if rec.path != "/graphql" or not isinstance(rec.json, dict):
        return None
    if rec.json.get("operationName"):
        return str(rec.json["operationName"])
    m = _OPERATION_RE.search(str(rec.json.get("query") or ""))
    return m.group(1) if m else None


def _run_id_of(rec: RecordedRequest) -> str | None:
    m = _FILE_STREAM_RE.match(rec.path) or _UPLOAD_RE.match(rec.path)
    if m:
        return m.group(3)
    op = (rec.operation or "").lower()
    if op in ("upsertbucket", "runresumestatus", "run", "runstate", "runhistorykeys"):
        return rec.variables.get("name") or None
    if op == "runoutputartifacts":
        return rec.variables.get("run") or None
    if op in ("createrunfiles", "markrunfilesuploaded"):
        return rec.variables.get("run") or None
    if op == "createartifact":
        return (rec.variables.get("input") or {}).get("runName") or None
    if op == "createartifactmanifest":
        return rec.variables.get("runName") or None
    return None


def wandb_env(tmp_path: os.PathLike[str] | str, base_url: str) -> dict[str, str]:
    """The environment for running wandb processes hermetically.

    A copy of ``os.environ`` without any WANDB_* or proxy variable, plus:
    ``WANDB_BASE_URL`` (the fake server), a fake ``WANDB_API_KEY``,
    telemetry/error reporting and system stats off, quiet output, git and
    code capture off, HOME, TMPDIR and every wandb directory (created)
    inside ``tmp_path``, and retry caps so failures end within seconds
    instead of retrying for minutes.
    """
    root = Path(tmp_path) / "wandb-env"
    dirs = {
        "HOME": root / "home",
        # Short: wandb-core puts its Unix socket in TMPDIR and falls back to
        # /tmp when the path would exceed the ~107-byte socket path limit.
        "TMPDIR": Path(tmp_path) / "wbtmp",
        "WANDB_DIR": root / "wandb-dir",
        "WANDB_CACHE_DIR": root / "cache",
        "WANDB_CONFIG_DIR": root / "config",
        "WANDB_DATA_DIR": root / "data",
        "WANDB_ARTIFACT_DIR": root / "artifacts",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WANDB_") and k.lower() not in proxies
    }
    env.update({k: str(v) for k, v in dirs.items()})
    env.update(
        {
            "WANDB_BASE_URL": base_url,
            "WANDB_API_KEY": FAKE_API_KEY,
            "WANDB_ERROR_REPORTING": "false",  # no telemetry to <base>/sdk/otel
            "WANDB__DISABLE_STATS": "true",
            "WANDB_SILENT": "true",
            "WANDB_DISABLE_GIT": "true",
            "WANDB_DISABLE_CODE": "true",
            "WANDB__GRAPHQL_RETRY_MAX": "2",
            "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "1",
            "WANDB__FILE_STREAM_RETRY_MAX": "2",
            "WANDB__FILE_STREAM_RETRY_WAIT_MAX_SECONDS": "1",
            "WANDB__FILE_TRANSFER_RETRY_MAX": "2",
            "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": "1",
        }
    )
    return env
