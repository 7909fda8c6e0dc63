"""Where a run's trace is sent: an OTLP/HTTP traces endpoint, the MLflow run, or nowhere.

In order (docs/otel.md, "Where traces go"):

1. `[otel] endpoint` of signac.rc (or AEXP_OTEL_ENDPOINT): `none` (the files only), `mlflow`,
   or a URL. A URL without a path gets OTLP's `/v1/traces`; one with a path is used as it is.
2. The MLflow run: when the run's backends include `mlflow` and its tracking URI is an
   http(s) server, the traces go to the server's `/v1/traces` with `x-mlflow-experiment-id` and
   `x-mlflow-run-id` naming the experiment and the run MLflow's replay made (found by its
   `aexp.run_id` tag through MLflow's client), so MLflow links the trace to that run.
3. OpenTelemetry's own variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as it is), else
   OTEL_EXPORTER_OTLP_ENDPOINT (+ `/v1/traces`); headers from OTEL_EXPORTER_OTLP_TRACES_HEADERS
   or OTEL_EXPORTER_OTLP_HEADERS (`key=value,...`). A collector set up for Claude Code's own
   telemetry then receives the runs as well.
4. Else nowhere: the files in the job are the whole export.

Headers (credentials) come from the environment only and are never written anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from aexp.errors import TrackerInitError

TRACES_PATH = "/v1/traces"
RUN_ID_TAG = "aexp.run_id"  # the tag MLflow's replay gives each run (aexp/trackers/mlflow)


@dataclass(frozen=True)
class Target:
    """One destination of traces: where to POST, with what headers, and the key that the
    record of sent lines uses for it (the URL, and for MLflow the experiment and run)."""

    url: str
    key: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    page: str | None = None  # a web page showing the traces (MLflow's run page)


def traces_url(endpoint: str) -> str:
    """`endpoint` as a traces URL: OTLP's `/v1/traces` added when it has no path."""
    parts = urllib.parse.urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TrackerInitError(f"OTLP endpoint {endpoint!r} is not an http(s) URL.")
    if parts.path in ("", "/"):
        parts = parts._replace(path=TRACES_PATH)
    return urllib.parse.urlunsplit(parts)


def shown(url: str) -> str:
    """`url` without a user name or password (what may be written and printed)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def otel_headers(environ: Mapping[str, str]) -> dict[str, str]:
    """Headers of OTEL_EXPORTER_OTLP_TRACES_HEADERS, else OTEL_EXPORTER_OTLP_HEADERS
    (`key=value` pairs, comma-separated, values URL-encoded, as OpenTelemetry specifies)."""
    text = environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or environ.get(
        "OTEL_EXPORTER_OTLP_HEADERS", ""
    )
    headers = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            headers[key.strip()] = urllib.parse.unquote(value.strip())
    return headers


def _mlflow_auth(environ: Mapping[str, str], uri: str) -> dict[str, str]:
    """The Authorization header MLflow's client would send (a token, or a user and password
    from the environment or the URI)."""
    token = environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    parts = urllib.parse.urlsplit(uri)
    user = environ.get("MLFLOW_TRACKING_USERNAME") or urllib.parse.unquote(parts.username or "")
    password = environ.get("MLFLOW_TRACKING_PASSWORD") or urllib.parse.unquote(parts.password or "")
    if not user:
        return {}
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {basic}"}


@contextlib.contextmanager
def _bounded_mlflow(timeout: float) -> Iterator[None]:
    """MLflow's client retries a failing server for minutes: bounded here to one try of
    `timeout` seconds, unless the environment sets its own bounds."""
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout))),
    }
    saved = {key: os.environ.get(key) for key in wanted}
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def mlflow_run(uri: str, project: str, run_id: str, timeout: float) -> tuple[str, str]:
    """(experiment id, MLflow run id) of the run tagged `aexp.run_id = run_id` in experiment
    `project` at tracking server `uri`, through MLflow's client.

    Raises TrackerInitError when mlflow is missing, the server does not answer, or the run is
    not there yet (the mlflow backend replays it first; the next sync sends the trace).
    """
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackerInitError(
            "sending traces into the MLflow run needs mlflow; pip install "
            "'agentic-experiments[mlflow]'."
        ) from None
    client = MlflowClient(tracking_uri=uri)
    try:
        with _bounded_mlflow(timeout):
            experiment = client.get_experiment_by_name(project)
            runs = (
                client.search_runs(
                    [experiment.experiment_id],
                    filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'",
                    max_results=1,
                )
                if experiment is not None
                else []
            )
    except Exception as exc:  # MLflow's own errors, connection errors
        text = " ".join(str(exc).split())[:300]
        raise TrackerInitError(f"MLflow at {shown(uri)} did not answer: {text}") from None
    if not runs:
        raise TrackerInitError(
            f"MLflow at {shown(uri)} has no run tagged {RUN_ID_TAG}={run_id} in experiment "
            f"{project!r} yet; the mlflow backend replays it first, then the trace follows."
        )
    return experiment.experiment_id, runs[0].info.run_id


def resolve(
    endpoint: str,
    *,
    backends: Sequence[str],
    mlflow_uri: str | None,
    project: str,
    run_id: str,
    timeout: float,
    environ: Mapping[str, str] | None = None,
) -> Target | None:
    """The target of run `run_id` (module docstring); None: the files only.

    `endpoint` is `[otel] endpoint` ("" when unset), `backends` the run's backends,
    `mlflow_uri` the project's MLflow tracking URI. Raises TrackerInitError for an endpoint
    that is not a URL, or (MLflow) when the run cannot be found (see `mlflow_run`).
    """
    env = os.environ if environ is None else environ
    choice = endpoint.strip()
    if choice.lower() == "none":
        return None
    web_mlflow = bool(mlflow_uri) and str(mlflow_uri).startswith(("http://", "https://"))
    if choice.lower() == "mlflow" or (not choice and "mlflow" in backends and web_mlflow):
        if not web_mlflow:
            raise TrackerInitError(
                f"[otel] endpoint = mlflow needs an MLflow tracking server (an http(s) tracking "
                f"URI), not {shown(str(mlflow_uri or 'a local store'))}."
            )
        uri = str(mlflow_uri)
        experiment_id, mlflow_id = mlflow_run(uri, project, run_id, timeout)
        url = shown(uri.rstrip("/")) + TRACES_PATH
        base = shown(uri.rstrip("/"))
        return Target(
            url=url,
            key=f"{url}#experiment={experiment_id}&run={mlflow_id}",
            headers={
                **_mlflow_auth(env, uri),
                "x-mlflow-experiment-id": experiment_id,
                "x-mlflow-run-id": mlflow_id,
            },
            page=f"{base}/#/experiments/{experiment_id}/runs/{mlflow_id}",
        )
    if choice:
        url = traces_url(choice)
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        url = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].strip()
        traces_url(url)  # checked: an http(s) URL
    elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        url = env["OTEL_EXPORTER_OTLP_ENDPOINT"].strip().rstrip("/") + TRACES_PATH
        traces_url(url)
    else:
        return None
    return Target(url=url, key=shown(url), headers=otel_headers(env))


__all__ = ["TRACES_PATH", "Target", "mlflow_run", "otel_headers", "resolve", "shown", "traces_url"]
