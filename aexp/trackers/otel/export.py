"""Export one run: its journal as a trace, appended to the run's traces file (what is new only).

Needs nothing but the job: no network, no OpenTelemetry package. The sync (`OtelAdapter.replay`)
and `aexp export-otel` both call `export_run`; the first then sends what the file holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aexp.jobdoc import JobDir, read_doc
from aexp.journal import JOURNAL_DIR, Journal, journal_path, read_journal
from aexp.trackers.otel.files import (
    Line,
    append_line,
    read_lines,
    request,
    span_digest,
    traces_path,
    written,
)
from aexp.trackers.otel.resource import RunContext, resource_attributes
from aexp.trackers.otel.trace import attributes, build_spans


@dataclass
class Export:
    """What `export_run` did: the traces file, the run's spans, those appended now."""

    path: Path
    spans: int  # spans of the run's trace
    appended: int  # spans new or changed since the file's last line (0: nothing written)
    lines: list[Line] = field(default_factory=list)  # the file's readable lines, after


def run_context(job_path: str | os.PathLike, run_id: str, service_name: str) -> RunContext:
    """What the job document says about run `run_id` of the job at `job_path` (research
    link, actor, page, backends, the run a rerun replaced). A document that cannot be read
    gives an empty context: the journal alone still makes the trace."""
    from aexp.errors import BindingError

    job = JobDir(os.path.basename(os.fspath(job_path).rstrip(os.sep)), os.fspath(job_path))
    try:
        doc: Mapping[str, Any] = read_doc(job)
    except (BindingError, OSError):
        doc = {}
    binding = doc.get("tracker") if isinstance(doc.get("tracker"), dict) else {}
    runs = [p for p in binding.get("previous_runs") or [] if isinstance(p, dict)]
    runs.append(binding)
    index = next((i for i, r in enumerate(runs) if r.get("run_id") == run_id), None)
    this: Mapping[str, Any] = runs[index] if index is not None else {}
    previous = runs[index - 1].get("run_id") if index else None
    parts = this.get("backends") if isinstance(this.get("backends"), dict) else {}
    limina = doc.get("limina") if isinstance(doc.get("limina"), dict) else {}
    actor = doc.get("actor") if isinstance(doc.get("actor"), dict) else None
    return RunContext(
        job_id=job.id,
        service_name=service_name,
        limina=limina,
        actor=actor,
        url=this.get("url") if isinstance(this.get("url"), str) else None,
        backends=list(parts or ([binding["backend"]] if this is binding and binding else [])),
        previous_run_id=previous if isinstance(previous, str) else None,
        version=_version(),
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentic-experiments")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return ""


def export_run(
    job_path: str | os.PathLike,
    run_id: str,
    *,
    journal: Journal | None = None,
    service_name: str = "aexp",
) -> Export:
    """Append to run `run_id`'s traces file the spans of its trace that the file does not hold
    as they are now (aexp/trackers/otel/files.py); returns what was done.

    Must not run twice at once for one run (the sync holds the job's claim; `aexp export-otel`
    the run's lock, see `run_lock`). Raises FileNotFoundError when the run has no journal,
    ValueError when the journal has no `init_run`, OSError when the file cannot be written.
    """
    if journal is None:
        journal = read_journal(journal_path(job_path, run_id))
    context = run_context(job_path, run_id, service_name)
    resource = attributes(resource_attributes(journal, context))
    spans = build_spans(journal, context)
    path = traces_path(job_path, run_id)
    lines = read_lines(path)
    have = written(lines)
    fresh = [span for span in spans if have.get(span["spanId"]) != span_digest(resource, span)]
    if fresh:
        append_line(path, request(resource, fresh, context.version))
        lines = read_lines(path)
    return Export(path=path, spans=len(spans), appended=len(fresh), lines=lines)


def run_lock(job_path: str | os.PathLike, run_id: str, timeout: float) -> Any:
    """A lock on run `run_id`'s trace files (filelock), for `timeout` seconds at most."""
    from filelock import FileLock

    return FileLock(str(Path(job_path, JOURNAL_DIR, run_id, "otel.lock")), timeout=timeout)


def job_runs(job_path: str | os.PathLike) -> list[str]:
    """The ids of the runs of the job at `job_path` that have a journal (the bound run, and
    those a rerun replaced), sorted."""
    return sorted(p.parent.name for p in Path(job_path, JOURNAL_DIR).glob("*/events.jsonl"))


__all__ = ["Export", "export_run", "job_runs", "run_context", "run_lock"]
