"""One execution attempt of a job inside its tracker run: `run_lifecycle` and `finish_run`.

    with run_lifecycle(job) as tracker:
        tracker.log({"loss": 0.1})

An attempt holds the job's claim (one process at a time works on a job), re-opens the bound run
(same run id, the step axis continued from the journal), keeps a heartbeat, turns
SIGTERM/SIGUSR1/SIGUSR2 (SLURM's warning, scancel) and SIGINT (Ctrl-C) into a recorded
preemption, closes the run's live backends and records the outcome in one update:

    success    status "complete",  tracker state "finished",  exit code 0
    exception  status "failed",    tracker state "failed",    exit code 1, traceback in error.log
    signal     status "preempted", tracker state "preempted", exit code 128 + signal number

What the attempt reads and writes, and when its start is recorded, is aexp.attempt's. The
journal's `finish` event is the commit point: an attempt killed after writing it but before its
document was updated is recorded from the journal by the next `execute` or `finish`, never run
again (a preempted one is resumed by that same `execute`).

A file system that refuses writes (full, over quota, read-only: STORAGE_ERRNOS) stops an attempt
from outside, as a signal does: it is recorded `preempted` with exit code 1 and the OSError in
`error`, and resumes from its last checkpoint once there is room. When not even that can be
written, the journal (or nothing) is the last word: the attempt's process is gone once the pass
ends, so aexp.state calls it running and stale at once on this host and the next `execute`
resumes it. Ctrl-C while the run opens (before the attempt's own handlers are in place) is a
preemption too.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aexp.attempt import Attempt, Binder
from aexp.binding import get_binding, pending_binding
from aexp.errors import BindingError
from aexp.jobdoc import now_iso, read_doc, update_doc
from aexp.joblock import job_claim
from aexp.journal import JournalWriter, journal_path, read_tail
from aexp.outcome import is_storage_error, record_error, settle
from aexp.schema import COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING
from aexp.stallwatch import StallWatch
from aexp.state import unrecorded_attempt
from aexp.tracker import Preempted, Tracker

try:
    # The C function under signal.signal: that wrapper turns the handler it returns into an
    # enum member where it can, and for a handler that is not one (the tracker's method) the
    # failed lookup formats the method's repr, the Tracker's, the Job's and the Project's:
    # ~40 us of the ~80 us that installing and restoring four handlers took per attempt.
    from _signal import signal as _set_handler
except ImportError:  # not CPython
    from signal import signal as _set_handler

# SIGINT too: Ctrl-C is a preemption like the others (the experiment runs on to its next
# checkpoint), not a KeyboardInterrupt in the middle of an epoch.
PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)


@contextmanager
def _preempt_signals(handler: Any) -> Iterator[None]:
    """Install `handler` for the preemption signals (main thread only), restore them after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: _set_handler(sig, handler) for sig in PREEMPT_SIGNALS}
    try:
        yield
    finally:
        for sig, restored in previous.items():
            _set_handler(sig, restored)


@contextmanager
def run_lifecycle(
    job: Any,
    *,
    heartbeat_interval: float = 30.0,
    stale_after: float = 300.0,
    artifacts: tuple[str, ...] = (),
    bind: Binder | None = None,
    spec: Mapping[str, Any] | None = None,
    stall_watch: StallWatch | None = None,
) -> Iterator[Tracker]:
    """Run one attempt of `job` inside its bound tracker run; yields the `Tracker`.

    The job's status goes running -> complete | failed | preempted with `started_at`,
    `ended_at`, `wallclock_s`; `heartbeat_at` is refreshed every `heartbeat_interval` seconds.
    `artifacts` (paths in the job) are attached to the run when the attempt ends, if they exist.
    `bind(spec)` returns a new binding for an unbound job, given its run's spec (bound by this
    attempt); without it an unbound job runs with lifecycle bookkeeping only. `spec`: the run's
    spec (`aexp.spec.run_spec`) when the caller has it. `stall_watch` preempts the attempt when
    its journal stops progressing (aexp.stallwatch). Exceptions (and `Preempted`, a
    SystemExit) are recorded, then re-raised.

    Raises JobBusyError if another process works on the job, AttemptEnded if the attempt the
    job shows as running had in fact ended (recorded now from the journal), NothingToRun (a
    BindingError) if the run already finished or failed, BindingError for a damaged document,
    OSError if the document cannot be written.
    """
    attempt = Attempt(
        job,
        heartbeat_interval=heartbeat_interval,
        stale_after=stale_after,
        artifacts=artifacts,
        bind=bind,
        spec=spec,
        stall_watch=stall_watch,
    )
    with job_claim(job):
        try:
            tracker = attempt.begin()
            with _attempt(attempt, tracker) as opened:
                yield opened
        finally:
            attempt.close()


@contextmanager
def _attempt(attempt: Attempt, tracker: Tracker) -> Iterator[Tracker]:
    number = attempt.number
    try:
        attempt.open_run()
    except KeyboardInterrupt:  # Ctrl-C while the run opens (before the handlers are in place)
        with _preempt_signals(signal.SIG_IGN):
            attempt.end(PREEMPTED, 128 + signal.SIGINT, preempted=True)
        raise
    except BaseException as exc:
        error = record_error(attempt.job, number)
        with _preempt_signals(signal.SIG_IGN):
            if is_storage_error(exc):
                attempt.end(PREEMPTED, 1, error, preempted=True)
            else:
                attempt.end(FAILED, 1, error)
        raise
    # The handlers stay in place until the attempt is recorded: while the experiment runs a
    # signal preempts it; once it has returned or raised, further signals are ignored (they
    # often come twice: scancel signals every process of the SLURM job, the batch script
    # forwards its own copy, a user presses Ctrl-C again) and the record is written whole.
    # Installed once per attempt: a sweep of short jobs pays for four handlers, not sixteen.
    with _preempt_signals(tracker._on_signal):
        try:
            yield tracker
            # Inside the `try`: a signal that lands before this line is a preemption recorded
            # as such (the attempt runs again), never an attempt left unrecorded.
            tracker._closing = True
        except (Preempted, KeyboardInterrupt) as exc:
            tracker._closing = True
            code = exc.code if isinstance(exc, Preempted) else 128 + signal.SIGINT
            attempt.end(PREEMPTED, int(code), preempted=True)
            raise
        except BaseException as exc:
            tracker._closing = True
            error = record_error(attempt.job, number)
            if is_storage_error(exc):  # a full disk stopped it: it resumes, it did not fail
                attempt.end(PREEMPTED, 1, error, preempted=True)
            else:
                attempt.end(FAILED, 1, error)
            raise
        attempt.end(FINISHED, 0)


def finish_run(job: Any) -> dict[str, Any]:
    """Record the end of a run whose last attempt ended without recording it: its process died
    after the journal's `finish`, or the run was left `completed` by an older aexp.

    Never needs a tracker backend: the journal holds the run, and the next sync brings every
    backend up to it. Idempotent; returns the binding. Raises BindingError when the job is not
    bound or its attempt has not ended, JobBusyError when another process works on the job.
    """
    with job_claim(job):
        doc = read_doc(job, fresh=True)
        binding = get_binding(job, doc) or pending_binding(job.path)
        if binding is None:
            raise BindingError(f"job {job.id} is not bound to a tracker run; nothing to finish.")
        state = binding["state"]
        path = journal_path(job.path, binding["run_id"])
        if state not in (COMPLETED, FAILED, FINISHED):
            tail = read_tail(path)
            later = unrecorded_attempt(tail, binding)
            if later is not None and later.ended:
                return settle(job, binding, tail)
            shown = RUNNING if later is not None else state
            raise BindingError(f"job {job.id}'s run is {shown}; it has not ended yet.")
        if state in (FINISHED, FAILED) and binding.get("finished_at"):
            return binding
        tail = read_tail(path, steps=False)
        code = binding.get("exit_code") or 0
        if tail.last is not None and tail.event != "finish":
            writer = JournalWriter(path)
            try:
                writer.finish(code)
            finally:
                writer.close()
        final = FINISHED if state in (COMPLETED, FINISHED) and code == 0 else FAILED
        ended = now_iso()

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            current = get_binding(job, doc) or binding
            closed = {**current, "state": final, "exit_code": code, "error": None}
            closed["closed"] = True
            closed["finished_at"] = closed.get("finished_at") or ended
            status = "complete" if final == FINISHED else "failed"
            return {"status": status, "ended_at": ended, "heartbeat_at": ended, "tracker": closed}

        return update_doc(job, change)["tracker"]


__all__ = ["PREEMPT_SIGNALS", "finish_run", "run_lifecycle"]
