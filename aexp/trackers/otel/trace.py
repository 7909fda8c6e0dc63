"""One run's journal as one OpenTelemetry trace, in OTLP's JSON encoding (docs/otel.md).

    trace   id = the first 16 bytes of SHA-256("aexp.trace" NUL run_id)
    run     the root span: first attempt's start to the last attempt's end; the run's outcome
            (status and `cicd.pipeline.result`), attempt count, last step and summary
    attempt one child span per execution attempt; its outcome, `aexp.resume`, `aexp.redo`,
            `aexp.checkpoint`, `aexp.artifact` and `aexp.preempted` events
    span id = the first 8 bytes of SHA-256("aexp.span" NUL run_id NUL attempt NUL index);
            the run span is attempt 0, index 0; attempt n's span is (n, 0)

Both ids depend on the run id alone, so every export of a run, from any process and after any
number of attempts, gives its spans the same ids: a span sent again (an interrupted send, a run
that grew) replaces itself in a backend that keys spans by id; it never doubles. Per-step metrics
are not spans or events (a span per step would explode any trace store): they stay in the
journal and the trackers; the run span carries the last value of each (its summary).

Values follow OTLP's JSON encoding (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-
encoding): ids in lowercase hex, 64-bit integers and nanosecond times as decimal strings, enums
as integers.
"""

from __future__ import annotations

import hashlib
import math
import signal
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from aexp.journal import Journal, iter_events
from aexp.trackers.otel.resource import RunContext, actor_attributes

SPAN_KIND_INTERNAL = 1
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
# The OTel SDK's default limit of attributes per span is 128: the summary keeps below it.
MAX_SUMMARY_ATTRIBUTES = 100
# ... and of events per span 128: an attempt's span keeps its last checkpoints, and says how many
# it wrote (an experiment may checkpoint every few seconds for days).
MAX_CHECKPOINT_EVENTS = 100


def trace_id(run_id: str) -> str:
    """The trace id of run `run_id`: 32 lowercase hex digits, never all zero."""
    return _nonzero(hashlib.sha256(b"aexp.trace\0" + run_id.encode()).digest()[:16])


def span_id(run_id: str, attempt: int, index: int = 0) -> str:
    """The id of span (`attempt`, `index`) of run `run_id`: 16 lowercase hex digits, never all
    zero. The run span is (0, 0); attempt n's span is (n, 0)."""
    key = f"aexp.span\0{run_id}\0{attempt}\0{index}".encode()
    return _nonzero(hashlib.sha256(key).digest()[:8])


def _nonzero(raw: bytes) -> str:
    # OTLP reserves the all-zero id for "invalid"; a hash hitting it is a 2**-64 chance.
    return raw.hex() if any(raw) else (b"\x01" + raw[1:]).hex()


def nanos(stamp: str | None) -> int | None:
    """An ISO-8601 timestamp of the journal as Unix nanoseconds (None: missing or unreadable)."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + moment.microsecond * 1000


def any_value(value: Any) -> dict[str, Any] | None:
    """A Python value as an OTLP JSON AnyValue (None: a value OTLP cannot hold, e.g. None)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list | tuple):
        values = [v for v in (any_value(item) for item in value) if v is not None]
        return {"arrayValue": {"values": values}}
    return None


def attributes(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    """OTLP JSON attributes (key order kept) of `pairs`; None values are left out."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    out = []
    for key, value in items:
        encoded = any_value(value)
        if encoded is not None:
            out.append({"key": key, "value": encoded})
    return out


def _result(state: str) -> str | None:
    # cicd.pipeline.result / cicd.pipeline.task.run.result values (OTel CICD conventions).
    return {"finished": "success", "failed": "failure", "preempted": "cancellation"}.get(state)


def _signal_name(exit_code: int | None) -> str | None:
    if exit_code is None or exit_code <= 128:
        return None
    try:
        return signal.Signals(exit_code - 128).name
    except ValueError:
        return None


def _attempt_events(
    journal: Journal,
) -> tuple[dict[int, dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """({attempt: its resume_run event} (host, pid, SLURM job id and restart count),
    {attempt: its checkpoint events, in order})."""
    resumes: dict[int, dict[str, Any]] = {}
    checkpoints: dict[int, list[dict[str, Any]]] = {}
    if not journal.path.exists():
        return resumes, checkpoints
    current = 1  # events before any resume_run belong to attempt 1 (as the reader counts)
    for event in iter_events(journal.path):
        kind = event.get("event")
        if kind == "resume_run" and type(event.get("attempt")) is int:
            current = event["attempt"]
            resumes.setdefault(current, event)
        elif kind == "checkpoint":
            checkpoints.setdefault(current, []).append(event)
    return resumes, checkpoints


def build_spans(journal: Journal, context: RunContext) -> list[dict[str, Any]]:
    """The run's spans in OTLP JSON (module docstring), the run span first.

    Raises ValueError when the journal has no `init_run` (there is no run to describe).
    """
    if not journal.init:
        raise ValueError(f"{journal.path} has no init_run event; there is no run to describe")
    run_id = journal.run_id
    tid = trace_id(run_id)
    root = span_id(run_id, 0)
    resumes, checkpoints = _attempt_events(journal)
    init_ns = nanos(str(journal.init.get("timestamp") or "")) or 0
    ends: dict[int, int] = {}  # attempt -> its latest event time
    redo: dict[int, list[Any]] = {}
    for row in journal.rows:
        stamp = nanos(row.timestamp)
        if stamp:
            ends[row.attempt] = max(ends.get(row.attempt, 0), stamp)
        if row.redo:
            redo.setdefault(row.attempt, []).append(row)
    artifacts: dict[int, list[Any]] = {}
    for artifact in journal.artifacts:
        artifacts.setdefault(artifact.attempt, []).append(artifact)
        stamp = nanos(artifact.timestamp)
        if stamp:
            ends[artifact.attempt] = max(ends.get(artifact.attempt, 0), stamp)

    spans: list[dict[str, Any]] = []
    previous_last: int | None = None
    for index, attempt in enumerate(journal.attempts):
        start = nanos(attempt.started_at) or init_ns
        end = nanos(attempt.ended_at) or max(ends.get(attempt.number, 0), start)
        if attempt.finished:
            state = (
                "preempted"
                if attempt.preempted
                else ("finished" if attempt.exit_code == 0 else "failed")
            )
        elif index + 1 < len(journal.attempts):
            state = "killed"  # a later attempt started: this one died without its finish
        else:
            state = "running"
        events: list[dict[str, Any]] = []
        resume = resumes.get(attempt.number, {})
        if attempt.number > 1:
            events.append(
                _event(
                    start,
                    "aexp.resume",
                    {
                        "aexp.resume.after_step": previous_last,
                        "aexp.resume.from_step": attempt.first_step,
                        "aexp.slurm.job_id": resume.get("slurm_job_id"),
                        "aexp.slurm.restart_count": resume.get("slurm_restart_count"),
                    },
                )
            )
        rows = redo.get(attempt.number) or []
        if rows:
            steps = [row.step for row in rows if row.step is not None]
            events.append(
                _event(
                    nanos(rows[0].timestamp) or start,
                    "aexp.redo",
                    {
                        "aexp.redo.rows": len(rows),
                        "aexp.redo.first_step": min(steps) if steps else None,
                        "aexp.redo.last_step": max(steps) if steps else None,
                    },
                )
            )
        saved = checkpoints.get(attempt.number) or []
        for checkpoint in saved[-MAX_CHECKPOINT_EVENTS:]:
            events.append(
                _event(
                    nanos(str(checkpoint.get("timestamp") or "")) or end,
                    "aexp.checkpoint",
                    {
                        "aexp.checkpoint.seq": checkpoint.get("seq"),
                        "aexp.checkpoint.last_step": checkpoint.get("last_step"),
                    },
                )
            )
        for artifact in artifacts.get(attempt.number) or []:
            events.append(
                _event(
                    nanos(artifact.timestamp) or end,
                    "aexp.artifact",
                    {
                        "aexp.artifact.name": artifact.name,
                        "aexp.artifact.path": artifact.path,
                        "aexp.artifact.size_bytes": artifact.size_bytes,
                    },
                )
            )
        signal_name = _signal_name(attempt.exit_code)
        if state == "preempted":
            events.append(
                _event(
                    end,
                    "aexp.preempted",
                    {"aexp.signal": signal_name, "aexp.attempt.exit_code": attempt.exit_code},
                )
            )
        spans.append(
            _span(
                tid,
                span_id(run_id, attempt.number),
                root,
                f"attempt {attempt.number}",
                start,
                end,
                {
                    "cicd.pipeline.task.name": "execute",
                    "cicd.pipeline.task.run.id": f"{run_id}/{attempt.number}",
                    "cicd.pipeline.task.run.result": _result(state)
                    or ("error" if state == "killed" else None),
                    "aexp.attempt.number": attempt.number,
                    "aexp.attempt.state": state,
                    "aexp.attempt.exit_code": attempt.exit_code,
                    "aexp.attempt.first_step": attempt.first_step,
                    "aexp.attempt.last_step": attempt.last_step,
                    "aexp.attempt.rows": attempt.rows,
                    "aexp.attempt.checkpoints": len(saved),
                    "host.name": attempt.host,
                    "process.pid": resume.get("pid"),
                },
                events,
                _attempt_status(state, attempt.exit_code, signal_name),
            )
        )
        if attempt.last_step is not None:
            previous_last = attempt.last_step
    state = journal.state
    starts = [int(s["startTimeUnixNano"]) for s in spans] + ([init_ns] if init_ns else [])
    start = min(starts, default=0)
    end = max([start, *(int(s["endTimeUnixNano"]) for s in spans)])
    last = journal.last_attempt
    summary = journal.summary
    kept = sorted(summary)[:MAX_SUMMARY_ATTRIBUTES]
    run_attributes: dict[str, Any] = {
        "cicd.pipeline.name": journal.group,
        "cicd.pipeline.run.id": run_id,
        "cicd.pipeline.run.url.full": context.url,
        "cicd.pipeline.result": _result(state),
        "aexp.run.state": state,
        "aexp.run.attempts": len(journal.attempts),
        "aexp.run.exit_code": last.exit_code if last is not None and last.finished else None,
        "aexp.run.last_step": journal.last_step,
        "aexp.run.rows": len(journal.history()),
        "aexp.run.tags": [str(tag) for tag in journal.init.get("tags") or []],
        "aexp.run.backends": list(context.backends),
        # MLflow reads a trace's session from its root span's `session.id`.
        "session.id": actor_attributes(context.actor).get("session.id"),
        **{f"aexp.summary.{key}": summary[key] for key in kept},
        "aexp.summary.dropped": (len(summary) - len(kept)) or None,
    }
    links = []
    if context.previous_run_id:
        links.append(
            {
                "traceId": trace_id(context.previous_run_id),
                "spanId": span_id(context.previous_run_id, 0),
                "attributes": attributes({"aexp.link": "previous_run"}),
            }
        )
    run_span = _span(
        tid,
        root,
        None,
        f"run {journal.group}",
        start,
        end,
        run_attributes,
        [],
        _run_status(state, last.exit_code if last is not None else None),
    )
    if links:
        run_span["links"] = links
    return [run_span, *spans]


def _event(at: int, name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {"timeUnixNano": str(at), "name": name, "attributes": attributes(attrs)}


def _span(
    tid: str,
    sid: str,
    parent: str | None,
    name: str,
    start: int,
    end: int,
    attrs: Mapping[str, Any],
    events: list[dict[str, Any]],
    status: dict[str, Any],
) -> dict[str, Any]:
    span: dict[str, Any] = {"traceId": tid, "spanId": sid}
    if parent:
        span["parentSpanId"] = parent
    span.update(
        name=name,
        kind=SPAN_KIND_INTERNAL,
        startTimeUnixNano=str(start),
        endTimeUnixNano=str(max(end, start)),
        attributes=attributes(attrs),
    )
    if events:
        span["events"] = events
    span["status"] = status
    return span


def _attempt_status(state: str, exit_code: int | None, signal_name: str | None) -> dict[str, Any]:
    if state == "finished":
        return {"code": STATUS_OK}
    if state == "failed":
        return {"code": STATUS_ERROR, "message": f"failed with exit code {exit_code}"}
    if state == "preempted":
        by = f" by {signal_name}" if signal_name else ""
        return {"code": STATUS_ERROR, "message": f"preempted{by} (exit code {exit_code})"}
    if state == "killed":
        return {"code": STATUS_ERROR, "message": "ended without a finish event (killed)"}
    return {"code": STATUS_UNSET}


def _run_status(state: str, exit_code: int | None) -> dict[str, Any]:
    if state == "finished":
        return {"code": STATUS_OK}
    if state == "failed":
        return {"code": STATUS_ERROR, "message": f"failed with exit code {exit_code}"}
    return {"code": STATUS_UNSET}  # preempted or running: the run goes on


__all__ = [
    "any_value",
    "attributes",
    "build_spans",
    "nanos",
    "span_id",
    "trace_id",
]
