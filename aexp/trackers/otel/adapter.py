"""The otel backend: each run as one OpenTelemetry trace, replayed from its journal at sync.

Nothing of OpenTelemetry runs on a compute node (`feed = "replay"`): a sync (or `aexp
export-otel`, offline) turns the run's journal into its trace (trace.py), appends what is new to
the run's OTLP JSON Lines file in the job (files.py, export.py), then sends the lines not sent
yet to the run's target (target.py: an OTLP/HTTP endpoint, or the MLflow run) and records each
as sent (wire.py, files.SentLog). docs/otel.md is the user's page.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aexp.errors import TrackerInitError
from aexp.trackers.base import ReplayResult, RunHandle, RunRecord, TrackerAdapter, TrackerUsageError
from aexp.trackers.otel.files import SentLog, sent_path
from aexp.trackers.otel.wire import PROTOBUF, PROTOCOLS, post

if TYPE_CHECKING:
    from aexp.journal import Journal
    from aexp.settings import Settings

_FED_BY_REPLAY = (
    "the otel backend is fed from the run's journal at sync (or by `aexp export-otel`); bind a "
    "job with backend otel instead of calling the adapter"
)


class OtelAdapter(TrackerAdapter):
    """Tracker backend writing each run as an OpenTelemetry trace (extra `[otel]` to send it).

    `endpoint`: `[otel] endpoint` ("" : MLflow's server when the run has the mlflow backend,
    else OpenTelemetry's OTEL_EXPORTER_OTLP_* variables, else the files only; "none"; "mlflow";
    a URL). `protocol`: "http/protobuf" or "http/json". `timeout`: seconds per request;
    `budget`: seconds one run's replay may spend sending. `service_name`: the resource's
    `service.name`. `mlflow_tracking_uri`: the project's MLflow tracking URI.
    """

    name = "otel"
    feed = "replay"

    def __init__(
        self,
        endpoint: str = "",
        protocol: str = PROTOBUF,
        timeout: float = 10.0,
        service_name: str = "aexp",
        mlflow_tracking_uri: str | None = None,
        budget: float = 600.0,
        root: str | os.PathLike | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise TrackerInitError(
                f"OTLP protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}."
            )
        self.endpoint, self.protocol, self.timeout = endpoint, protocol, float(timeout)
        self.service_name, self.mlflow_tracking_uri = service_name, mlflow_tracking_uri
        self.budget, self.root = float(budget), root

    @classmethod
    def from_settings(
        cls, settings: Settings | None, root: str | os.PathLike | None, **options: Any
    ) -> OtelAdapter:
        """The adapter as signac.rc's `[otel]` configures it, with the project's MLflow tracking
        URI (`resolve_tracking_uri`) and `[sync] timeout` as the budget of one run."""
        if settings is None:
            return cls(root=root, **options)
        from aexp.trackers.mlflow.uri import resolve_tracking_uri

        otel = settings.otel
        mlflow_uri = resolve_tracking_uri(root or os.getcwd(), settings.mlflow_tracking_uri)
        return cls(
            endpoint=otel.endpoint,
            protocol=otel.protocol,
            timeout=otel.timeout,
            service_name=otel.service_name,
            mlflow_tracking_uri=mlflow_uri,
            budget=settings.sync_timeout,
            root=root,
        )

    # -- the five methods: a replayed backend is never called during an attempt ---------------
    def init_run(
        self,
        *,
        project: str,
        group: str,
        tags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        notes: str | None = None,
        offline: bool = False,
        workdir: str | Path | None = None,
        run_id: str | None = None,
    ) -> RunHandle:
        """Refused (TrackerUsageError): the trace is made from the journal, not live."""
        raise TrackerUsageError(f"{_FED_BY_REPLAY}.")

    def log(
        self, handle: RunHandle, metrics: Mapping[str, Any], *, step: int | None = None
    ) -> None:
        """Refused: per-step metrics never become spans (they stay in the journal)."""
        raise TrackerUsageError(f"{_FED_BY_REPLAY}.")

    def log_artifact(self, handle: RunHandle, name: str, path: str | Path) -> None:
        """Refused: artifacts reach the trace as events, from the journal."""
        raise TrackerUsageError(f"{_FED_BY_REPLAY}.")

    def finish(self, handle: RunHandle, *, exit_code: int = 0, preempted: bool = False) -> None:
        """Refused: an attempt's end reaches the trace from the journal."""
        raise TrackerUsageError(f"{_FED_BY_REPLAY}.")

    def list_runs(self, *, project: str, group_prefix: str = "") -> list[RunRecord]:
        """The runs of `project` exported so far (a traces file in their job), from the last
        version of each run's root span; group starting with `group_prefix`."""
        from aexp.jobs import find_project_root
        from aexp.trackers.otel.listing import exported_runs

        root = find_project_root(self.root or os.getcwd())
        return exported_runs(Path(root, "workspace"), project=project, group_prefix=group_prefix)

    # -- the replay -----------------------------------------------------------------------------
    def replay(self, journal: Journal, *, job_path: str, state: Mapping[str, Any]) -> ReplayResult:
        """Export the run's trace into its file, then send the lines its target has not
        accepted yet, each recorded in flight before and sent after (files.SentLog).

        Returns the spans sent (`rows`), the target's page, and a state naming the file, the
        target and the lines sent. Raises TrackerInitError (one sentence) when the target does
        not accept a line or cannot be found, TrackerUsageError when the journal has no run.
        """
        from aexp.trackers.otel.export import export_run, run_lock
        from aexp.trackers.otel.target import resolve

        t0 = time.monotonic()
        run_id = journal.run_id
        with run_lock(job_path, run_id, self.budget):
            try:
                exported = export_run(
                    job_path, run_id, journal=journal, service_name=self.service_name
                )
            except ValueError as exc:
                raise TrackerUsageError(f"{exc}.") from None
            target = resolve(
                self.endpoint,
                backends=journal.init.get("backends") or [],
                mlflow_uri=self.mlflow_tracking_uri,
                project=journal.project,
                run_id=run_id,
                timeout=self.timeout,
            )
            new_state: dict[str, Any] = {
                "file": os.path.relpath(exported.path, job_path),
                "lines": len(exported.lines),
                "spans": exported.spans,
            }
            if target is None:
                return ReplayResult(state={**new_state, "target": None}, complete=True, unit="span")
            log = SentLog(sent_path(job_path, run_id))
            sent, flying = log.lines(target.key)
            todo = [line for line in exported.lines if (line.number, line.digest) not in sent]
            again = [line for line in todo if (line.number, line.digest) in flying]
            if again:
                spans = sum(line.span_count for line in again)
                print(
                    f"note: run {run_id}: sending again {spans} span(s) whose earlier send to "
                    f"{target.url} was interrupted (same span ids: a backend keeps one copy)",
                    file=sys.stderr,
                )
            count = 0
            for line in todo:
                if time.monotonic() - t0 > self.budget:
                    raise TrackerInitError(
                        f"sending run {run_id}'s trace took over {self.budget:g} s; the rest "
                        "is sent by the next sync"
                    )
                log.record("in_flight", target.key, line)
                post(
                    target.url,
                    line.data,
                    protocol=self.protocol,
                    headers=target.headers,
                    timeout=self.timeout,
                )
                log.record("sent", target.key, line)
                count += line.span_count
        return ReplayResult(
            url=target.page,
            rows=count,
            state={**new_state, "target": target.key, "sent_lines": len(sent) + len(todo)},
            complete=True,
            unit="span",
        )


__all__ = ["OtelAdapter"]
