"""The run's trace on disk: an OTLP JSON Lines file, and the record of what was sent where.

Both live beside the run's journal, in `<job>/tracker_log/<run_id>/`:

    otel-traces.jsonl   OpenTelemetry's file format (https://opentelemetry.io/docs/specs/otel/
                        protocol/file-exporter/): one signal per file (traces), each line one
                        ExportTraceServiceRequest in OTLP JSON. Append-only: an export appends a
                        line with the spans that are new or changed since the lines before it
                        (none: nothing is appended), so a collector reading the file
                        (`otlpjsonfile` receiver) gets each version of a span once.
    otel-sent.jsonl     one event per line, written like the journal: `in_flight` before a line
                        of the traces file is sent to a target, `sent` once the target accepted
                        it; a line is sent to a target once, and a line left in flight by a kill
                        is sent again, whole, with the same span ids.

A line cut short by a kill is skipped by readers and closed off by the next writer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aexp.journal import JOURNAL_DIR, JournalWriter, iter_events

TRACES_FILE = "otel-traces.jsonl"
SENT_FILE = "otel-sent.jsonl"
SCOPE = "aexp"


def traces_path(job_path: str | os.PathLike, run_id: str) -> Path:
    """The traces file of run `run_id` of the job at `job_path`."""
    return Path(job_path, JOURNAL_DIR, run_id, TRACES_FILE)


def sent_path(job_path: str | os.PathLike, run_id: str) -> Path:
    """The record of what was sent of run `run_id`'s traces file."""
    return Path(job_path, JOURNAL_DIR, run_id, SENT_FILE)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def span_digest(resource: Sequence[Mapping[str, Any]], span: Mapping[str, Any]) -> str:
    """A digest of one span as exported with `resource` (changes when either changes)."""
    return hashlib.sha256(_canonical([resource, span])).hexdigest()[:16]


def request(
    resource: Sequence[Mapping[str, Any]], spans: Sequence[Mapping[str, Any]], version: str
) -> dict[str, Any]:
    """One ExportTraceServiceRequest (OTLP JSON) of `spans` sharing `resource`."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": list(resource)},
                "scopeSpans": [
                    {"scope": {"name": SCOPE, "version": version}, "spans": list(spans)}
                ],
            }
        ]
    }


@dataclass(frozen=True)
class Line:
    """One readable line of a traces file: its number (from 0, torn lines counted), a digest
    of its text, and the request it holds."""

    number: int
    digest: str
    data: dict[str, Any]

    def spans(self) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """(resource attributes, span) of every span of the line."""
        for resource_spans in self.data.get("resourceSpans") or []:
            resource = (resource_spans.get("resource") or {}).get("attributes") or []
            for scope_spans in resource_spans.get("scopeSpans") or []:
                for span in scope_spans.get("spans") or []:
                    yield resource, span

    @property
    def span_count(self) -> int:
        return sum(1 for _ in self.spans())


def read_lines(path: str | os.PathLike) -> list[Line]:
    """The readable lines of a traces file ([] when there is none)."""
    lines = []
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return []
    with fh:
        for number, raw in enumerate(fh):
            try:
                data = json.loads(raw)
            except ValueError:  # a torn line
                continue
            if isinstance(data, dict):
                digest = hashlib.sha256(raw.rstrip(b"\n")).hexdigest()[:16]
                lines.append(Line(number, digest, data))
    return lines


def written(lines: Sequence[Line]) -> dict[str, str]:
    """{span id: digest of its latest version} over `lines`."""
    out = {}
    for line in lines:
        for resource, span in line.spans():
            out[str(span.get("spanId"))] = span_digest(resource, span)
    return out


def append_line(path: Path, data: Mapping[str, Any]) -> None:
    """Append `data` as one line (one write; a torn last line is closed off first)."""
    writer = JournalWriter(path)  # the journal's append: what a kill can tear, it mends
    try:
        writer._append(json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n")
    finally:
        writer.close()


@dataclass
class SentLog:
    """What of a traces file went to which target (module docstring)."""

    path: Path

    def lines(self, target: str) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
        """((line, digest) sent to `target`, (line, digest) left in flight to it)."""
        sent: set[tuple[int, str]] = set()
        flying: set[tuple[int, str]] = set()
        if not self.path.exists():
            return sent, flying
        for event in iter_events(self.path):
            if event.get("target") != target:
                continue
            key = (event.get("line"), event.get("digest"))
            if event.get("event") == "sent":
                sent.add(key)  # type: ignore[arg-type]
            elif event.get("event") == "in_flight":
                flying.add(key)  # type: ignore[arg-type]
        return sent, flying - sent

    def record(self, state: str, target: str, line: Line, **fields: Any) -> None:
        """Append one `state` ("in_flight" or "sent") record of `line` for `target`; the span
        ids of the line ride along, so the record says what was sent per span."""
        ids = [str(span.get("spanId")) for _, span in line.spans()]
        writer = JournalWriter(self.path)
        try:
            writer.event(
                state, target=target, line=line.number, digest=line.digest, spans=ids, **fields
            )
        finally:
            writer.close()


def check_traces_file(path: str | os.PathLike) -> list[str]:
    """What keeps the file at `path` from being an OTLP JSON Lines traces file, one sentence
    each ([] when it is one): every line a JSON object holding `resourceSpans` only (one signal
    per file), ids in lowercase hex of the right length, and the whole line an
    ExportTraceServiceRequest to opentelemetry-proto's parser.

    Needs opentelemetry-proto (the `otel` extra).
    """
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from aexp.trackers.otel.wire import as_proto_json

    problems = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                data = json.loads(raw)
            except ValueError as exc:
                problems.append(f"line {number} is not JSON ({exc})")
                continue
            if not isinstance(data, dict) or set(data) != {"resourceSpans"}:
                keys = sorted(data) if isinstance(data, dict) else type(data).__name__
                problems.append(f"line {number} holds {keys}, not resourceSpans alone")
                continue
            try:
                ParseDict(as_proto_json(data), ExportTraceServiceRequest())
            except (ParseError, ValueError) as exc:
                problems.append(f"line {number} is not an ExportTraceServiceRequest ({exc})")
    return problems


__all__ = [
    "SENT_FILE",
    "TRACES_FILE",
    "Line",
    "SentLog",
    "append_line",
    "check_traces_file",
    "read_lines",
    "request",
    "sent_path",
    "span_digest",
    "traces_path",
    "written",
]
