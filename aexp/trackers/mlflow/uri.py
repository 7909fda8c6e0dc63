"""Where MLflow runs go: the tracking URI, its precedence, and what follows from it.

No MLflow import: the workflow resolves the URI (and `status` shows it) without paying for it.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from aexp.errors import TrackerInitError

ENV_VAR = "MLFLOW_TRACKING_URI"
DEFAULT_DB = "mlflow.db"
# Where runs of a local sqlite store keep their files, beside the database. The name is the one
# `mlflow server` uses for its default artifact destination (./mlartifacts).
ARTIFACT_DIR = "mlartifacts"
_SQLITE = "sqlite:///"


def resolve_tracking_uri(project_root: str | os.PathLike, configured: str | None) -> str:
    """The tracking URI a project's runs go to.

    Precedence: the environment's MLFLOW_TRACKING_URI (as MLflow users expect it to win), else
    `configured` (signac.rc's `[mlflow] tracking_uri`), else `sqlite:///<project_root>/mlflow.db`.
    Empty strings count as unset. A relative sqlite path (`sqlite:///runs/mlflow.db`) is resolved
    against `project_root`, not the current directory: operations run with the job's directory
    as their current directory. Other URIs (http(s)://, postgresql://, ...) are returned as given.
    """
    uri = (os.environ.get(ENV_VAR) or "").strip() or (configured or "").strip()
    if not uri:
        uri = _SQLITE + DEFAULT_DB
    return absolute_sqlite(uri, project_root)


def absolute_sqlite(uri: str, base: str | os.PathLike) -> str:
    """`uri` with a relative sqlite database path made absolute against `base`.

    `sqlite:///rel.db` (three slashes) is relative, `sqlite:////abs.db` absolute (SQLAlchemy's
    rule); in-memory databases and query strings are kept.
    """
    if not uri.startswith(_SQLITE):
        return uri
    path, sep, query = uri[len(_SQLITE) :].partition("?")
    if not path or path == ":memory:" or os.path.isabs(path):
        return uri
    return f"{_SQLITE}{Path(base, path).resolve()}{sep}{query}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI (None for other URIs and in-memory databases)."""
    if not uri.startswith(_SQLITE):
        return None
    path = uri[len(_SQLITE) :].partition("?")[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def default_artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its runs' files, when aexp has to say.

    A sqlite store keeps them in `mlartifacts/` beside the database: MLflow's own default there
    is `./mlruns` of whatever directory the process happens to run in. Other stores (a tracking
    server, or a database server) choose for themselves: None.
    """
    path = sqlite_path(uri)
    if path is None:
        return None
    return (path.parent / ARTIFACT_DIR).resolve().as_uri()


def redact(uri: str) -> str:
    """`uri` without a password (http://user:secret@host -> http://user@host): the URI is stored
    in job documents and printed, and no secret may be."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def run_page(uri: str, experiment_id: str, mlflow_run_id: str) -> str | None:
    """The run's page in MLflow's web UI for an http(s) tracking URI, else None (a sqlite store
    has no web address until someone runs `mlflow ui` on it)."""
    if not is_http(uri):
        return None
    return f"{redact(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{mlflow_run_id}"


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Raise TrackerInitError when nothing answers at the http(s) tracking URI `uri`.

    One GET of `<uri>/health`: an HTTP answer below 500 (even 401/404) or a TLS handshake problem
    means a server is there (MLflow's client then reports the real problem); a 5xx answer means
    it is there but failing, which is no better than absent: TrackerInitError. Without this probe,
    MLflow's client retries a refused connection or a 5xx with exponential backoff for minutes
    (MLFLOW_HTTP_REQUEST_MAX_RETRIES, default 7) before failing.
    """
    if not is_http(uri):
        return
    # Imported here: urllib.request brings http.client, email and ssl (~50 ms), which importing
    # aexp must not pay.
    import ssl
    import urllib.error
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if ":" in (parts.hostname or ""):  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    probe = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")
    )
    try:
        with urllib.request.urlopen(probe, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            return
        raise TrackerInitError(
            f"the MLflow tracking server at {redact(uri)} answers {exc.code} ({exc.reason}) "
            "instead of working; see its log, or point "
            f"{ENV_VAR} (or [mlflow] tracking_uri in signac.rc) at a working one."
        ) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return
        reason = exc.reason
    except OSError as exc:  # refused, timed out, unknown host
        reason = exc
    raise TrackerInitError(
        f"cannot reach the MLflow tracking server at {redact(uri)} ({reason}); start it, or "
        f"point {ENV_VAR} (or [mlflow] tracking_uri in signac.rc) at a running one."
    )


__all__ = [
    "ARTIFACT_DIR",
    "DEFAULT_DB",
    "ENV_VAR",
    "absolute_sqlite",
    "check_reachable",
    "default_artifact_location",
    "is_http",
    "redact",
    "resolve_tracking_uri",
    "run_page",
    "sqlite_path",
]
