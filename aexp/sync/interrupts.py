"""SIGTERM and SIGHUP treated like Ctrl-C while uploading.

A killed job or a closed login session sends SIGTERM or SIGHUP; inside `terminate_cleanly` they
raise an exception like Ctrl-C's KeyboardInterrupt, so the uploads stop the same way (W&B's process
tree killed, what completed kept and recorded, everything else left unsynced), and the process
then exits with 128 + signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class _Terminated(BaseException):
    # A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it.
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP unwind the block like Ctrl-C, then SystemExit(128 +
    signal) is raised. Only for signals whose default action is in force, and only in the main
    thread (signals are delivered there); elsewhere the block runs unchanged. The previous
    handlers are restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    except _Terminated as exc:
        raise SystemExit(128 + exc.signum) from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
