"""The otel backend: every run as one OpenTelemetry trace, replayed from its journal at sync.

Importing this package imports no OpenTelemetry package; only sending as protobuf and the file
check need opentelemetry-proto (`pip install 'agentic-experiments[otel]'`). docs/otel.md is
the user's page.

    adapter.py   OtelAdapter: feed = "replay"; `replay` exports, then sends what is new
    trace.py     the journal as spans (OTLP JSON): ids, attributes, events
    resource.py  what the job says about the run: the resource, the actor, the previous run
    export.py    one run's export into its traces file (offline; `aexp export-otel`)
    files.py     the OTLP JSON Lines traces file, the record of what was sent, the format check
    target.py    where traces go: an OTLP/HTTP endpoint, the MLflow run, or nowhere
    wire.py      one OTLP/HTTP request, bounded
    listing.py   the exported runs read back (`list_runs`)
"""

from __future__ import annotations

from aexp.trackers.otel.adapter import OtelAdapter
from aexp.trackers.otel.export import export_run
from aexp.trackers.otel.files import check_traces_file, traces_path
from aexp.trackers.otel.trace import span_id, trace_id

__all__ = ["OtelAdapter", "check_traces_file", "export_run", "span_id", "trace_id", "traces_path"]
