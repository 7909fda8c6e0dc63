"""MLflow's own HTTP limits, bounded by the sync's timeout.

MLflow's client retries a request that fails with a 5xx (or cannot connect) up to
MLFLOW_HTTP_REQUEST_MAX_RETRIES times (default 7) with a backoff that doubles from
MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR seconds (default 2), each try waiting up to
MLFLOW_HTTP_REQUEST_TIMEOUT seconds (default 120): measured, a server answering 500 held a
replay about four minutes per run. While aexp replays, `request_limits(timeout)` sets these three
so that a failing server fails the run well within `timeout`: 2 retries, a backoff of 1 s (1 s,
then 2 s), each try at most a third of the timeout (1..120 s). A variable the environment sets
itself is left as it is. MLflow reads them at each request (mlflow.utils.rest_utils.http_request).
The sync bounds the whole replay by its timeout besides (aexp.sync.deadline).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

MAX_RETRIES = "2"
BACKOFF_FACTOR = "1"
_lock = threading.Lock()
_depth = [0]
_set: list[str] = []


def limits_for(timeout: float) -> dict[str, str]:
    """The MLFLOW_HTTP_REQUEST_* values for a replay bounded by `timeout` seconds."""
    per_try = max(1, min(120, int(timeout // 3)))
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": MAX_RETRIES,
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": BACKOFF_FACTOR,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(per_try),
    }


@contextlib.contextmanager
def request_limits(timeout: float | None) -> Iterator[None]:
    """Inside the block, MLflow's HTTP retries and timeouts fit `timeout` seconds (module
    docstring); None: MLflow's own. Nested and concurrent blocks share the outermost values;
    the variables are removed when the last block ends."""
    if not timeout:
        yield
        return
    with _lock:
        if _depth[0] == 0:
            for name, value in limits_for(timeout).items():
                if name not in os.environ:
                    os.environ[name] = value
                    _set.append(name)
        _depth[0] += 1
    try:
        yield
    finally:
        with _lock:
            _depth[0] -= 1
            if _depth[0] == 0:
                for name in _set:
                    os.environ.pop(name, None)
                _set.clear()


__all__ = ["limits_for", "request_limits"]
