"""A real OTLP/HTTP traces receiver on loopback, for the tests: what a collector does on
`POST /v1/traces`, decoding each request with opentelemetry-proto (protobuf or OTLP JSON).

Every request is kept as received (`requests`), and the spans as a store that keys them by
(trace id, span id) would hold them, the last version winning (`stored`). `delay` holds each
answer to request number `hold` (from 1; None: every request) back (a test kills a sender while
it waits); `fail_with` answers that HTTP status.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict, Parse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def _hex(value: str | None) -> str | None:
    return base64.b64decode(value).hex() if value else None


def _value(encoded: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in encoded:
            return encoded[key]
    if "intValue" in encoded:
        return int(encoded["intValue"])
    if "arrayValue" in encoded:
        return [_value(v) for v in encoded["arrayValue"].get("values", [])]
    return None


def _attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items}


@dataclass
class Span:
    """One received span, decoded (ids in hex, attributes as a dict)."""

    trace_id: str
    span_id: str
    parent: str | None
    name: str
    start: int
    end: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    links: list[tuple[str, str]]
    status: tuple[int, str]
    raw: str = field(repr=False, default="")  # the span's canonical JSON: equal = same version


def decode(message: ExportTraceServiceRequest) -> list[Span]:
    """The spans of one request."""
    spans = []
    data = MessageToDict(message)  # protobuf's JSON mapping: ids in base64
    for resource_spans in data.get("resourceSpans", []):
        resource = _attrs(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                status = span.get("status", {})
                code = {"STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(status.get("code"), 0)
                spans.append(
                    Span(
                        trace_id=_hex(span["traceId"]),
                        span_id=_hex(span["spanId"]),
                        parent=_hex(span.get("parentSpanId")),
                        name=span["name"],
                        start=int(span["startTimeUnixNano"]),
                        end=int(span["endTimeUnixNano"]),
                        attributes=_attrs(span.get("attributes", [])),
                        resource=resource,
                        events=[
                            (e["name"], _attrs(e.get("attributes", [])))
                            for e in span.get("events", [])
                        ],
                        links=[
                            (_hex(x["traceId"]), _hex(x["spanId"])) for x in span.get("links", [])
                        ],
                        status=(code, status.get("message", "")),
                        raw=json.dumps([resource, span], sort_keys=True),
                    )
                )
    return spans


class OtlpReceiver:
    """`with OtlpReceiver() as receiver:` a receiver at `receiver.url` (`.../v1/traces`)."""

    def __init__(
        self, *, delay: float = 0.0, hold: int | None = None, fail_with: int | None = None
    ) -> None:
        self.delay, self.hold, self.fail_with = delay, hold, fail_with
        self.requests: list[list[Span]] = []
        self.content_types: list[str] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                kind = self.headers.get("Content-Type", "")
                message = ExportTraceServiceRequest()
                if kind.startswith("application/json"):
                    data = json.loads(body)
                    for rs in data.get("resourceSpans", []):
                        for ss in rs.get("scopeSpans", []):
                            for span in ss.get("spans", []):
                                for key in ("traceId", "spanId", "parentSpanId"):
                                    if span.get(key):
                                        raw = bytes.fromhex(span[key])
                                        span[key] = base64.b64encode(raw).decode()
                                for link in span.get("links", []):
                                    for key in ("traceId", "spanId"):
                                        raw = bytes.fromhex(link[key])
                                        link[key] = base64.b64encode(raw).decode()
                    Parse(json.dumps(data), message)
                else:
                    message.ParseFromString(body)
                with receiver._lock:
                    receiver.requests.append(decode(message))
                    receiver.content_types.append(kind)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    number = len(receiver.requests)
                if receiver.delay and receiver.hold in (None, number):
                    time.sleep(receiver.delay)
                if receiver.fail_with:
                    self.send_error(receiver.fail_with)
                    return
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def spans(self) -> list[Span]:
        """Every span received, in order (a span sent twice is here twice)."""
        with self._lock:
            return [span for request in self.requests for span in request]

    def stored(self) -> dict[tuple[str, str], Span]:
        """The spans as a store keyed by (trace id, span id) holds them: the last version."""
        return {(s.trace_id, s.span_id): s for s in self.spans}
