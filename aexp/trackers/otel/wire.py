"""OTLP/HTTP: one ExportTraceServiceRequest POSTed to a traces endpoint, bounded by a timeout.

The body is protobuf (`http/protobuf`, OTLP/HTTP's default, encoded with opentelemetry-proto) or
the OTLP JSON of the traces file as it is (`http/json`). Success is a 2xx answer whose
ExportTraceServiceResponse rejects no span (https://opentelemetry.io/docs/specs/otlp/#otlphttp).
Anything else raises `SendError` with one sentence; nothing is retried here (the next sync sends
what was not accepted).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from aexp.errors import TrackerInitError

PROTOBUF, JSON = "http/protobuf", "http/json"
PROTOCOLS = (PROTOBUF, JSON)
INSTALL_HINT = "pip install 'agentic-experiments[otel]'"
_ID_LENGTHS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
_HEX = re.compile(r"^[0-9a-f]*$")


class SendError(TrackerInitError):
    """The endpoint did not accept a request (unreachable, an error status, spans rejected)."""


def _b64_ids(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    for key, length in _ID_LENGTHS.items():
        value = out.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) != length or not _HEX.match(value):
            raise ValueError(f"{key} {value!r} is not {length} lowercase hex digits")
        out[key] = base64.b64encode(bytes.fromhex(value)).decode()
    return out


def as_proto_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """OTLP JSON (hex ids) as protobuf's JSON mapping (base64 ids), for json_format.ParseDict.
    Raises ValueError for an id that is not lowercase hex of its length."""
    out = json.loads(json.dumps(data))
    for resource_spans in out.get("resourceSpans") or []:
        for scope_spans in resource_spans.get("scopeSpans") or []:
            spans = []
            for span in scope_spans.get("spans") or []:
                span = _b64_ids(span)
                span["links"] = [_b64_ids(link) for link in span.get("links") or []]
                spans.append(span)
            scope_spans["spans"] = spans
    return out


def protobuf(data: Mapping[str, Any]) -> bytes:
    """The OTLP JSON request `data` as protobuf bytes (needs opentelemetry-proto)."""
    try:
        from google.protobuf.json_format import ParseDict
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        raise TrackerInitError(
            f"sending traces as protobuf needs opentelemetry-proto; {INSTALL_HINT}, or set "
            f"[otel] protocol = {JSON}."
        ) from None
    return ParseDict(as_proto_json(data), ExportTraceServiceRequest()).SerializeToString()


def _rejected(body: bytes, content_type: str) -> tuple[int, str]:
    """(rejected spans, message) of an ExportTraceServiceResponse body (0: all accepted)."""
    if not body:
        return 0, ""
    if content_type.startswith("application/json"):
        try:
            partial = json.loads(body).get("partialSuccess") or {}
        except (ValueError, AttributeError):
            return 0, ""
        return int(partial.get("rejectedSpans") or 0), str(partial.get("errorMessage") or "")
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )
    except ImportError:
        return 0, ""
    response = ExportTraceServiceResponse()
    try:
        response.ParseFromString(body)
    except Exception:  # not a response message (some servers answer plain text): accepted
        return 0, ""
    partial = response.partial_success
    return int(partial.rejected_spans), partial.error_message


def post(
    url: str,
    data: Mapping[str, Any],
    *,
    protocol: str = PROTOBUF,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> None:
    """POST the OTLP JSON request `data` to `url` as `protocol`; return once it is accepted.

    Raises SendError (one sentence, without the headers' values) when it is not: connection
    refused or timed out after `timeout` seconds, a non-2xx status, spans rejected.
    """
    if protocol == JSON:
        body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
        content_type = "application/json"
    else:
        body = protobuf(data)
        content_type = "application/x-protobuf"
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={**(headers or {}), "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read()
            answered_type = response.headers.get("Content-Type") or ""
    except urllib.error.HTTPError as exc:
        detail = " ".join(exc.read()[:200].decode(errors="replace").split())
        raise SendError(
            f"{url} answered HTTP {exc.code}{f' ({detail})' if detail else ''}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SendError(f"could not send to {url}: {reason}") from None
    rejected, message = _rejected(answer, answered_type)
    if rejected:
        raise SendError(f"{url} rejected {rejected} span(s): {message or 'no reason given'}")


__all__ = ["JSON", "PROTOBUF", "PROTOCOLS", "SendError", "as_proto_json", "post", "protobuf"]
