"""Backend SDKs kept off stderr during a sync, unless `-v`.

A sync reports one line per failure in its own words; MLflow (and SQLAlchemy, alembic, urllib3
beneath it) log INFO lines while they work ("Creating initial MLflow database tables...") and a
whole traceback for every refusal (a read-only sqlite store: about 70 lines per run). Inside
`quiet_sdks()` their loggers log nothing (their level is CRITICAL; MLflow is told the same by
MLFLOW_LOGGING_LEVEL in case it is imported inside the block, since its import sets its loggers'
level) and Python warnings are not shown. The levels are restored afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

SDK_LOGGERS = ("mlflow", "alembic", "sqlalchemy", "urllib3", "huey", "opentelemetry")
_LEVEL_VARIABLE = "MLFLOW_LOGGING_LEVEL"


@contextlib.contextmanager
def quiet_sdks(verbose: bool = False) -> Iterator[None]:
    """Inside the block, the SDK loggers and Python warnings print nothing (unless `verbose`)."""
    if verbose:
        yield
        return
    manager = logging.Logger.manager
    levels = {
        name: logging.getLogger(name).level if name in manager.loggerDict else logging.NOTSET
        for name in SDK_LOGGERS
    }
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    variable_set = _LEVEL_VARIABLE in os.environ
    if not variable_set:
        os.environ[_LEVEL_VARIABLE] = "CRITICAL"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if not variable_set:
            os.environ.pop(_LEVEL_VARIABLE, None)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


__all__ = ["SDK_LOGGERS", "quiet_sdks"]
