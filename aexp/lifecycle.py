"""One execution attempt of a job inside its tracker run: `run_lifecycle` and `finish_run`.

    with run_lifecycle(job) as tracker:
        tracker.log({"loss": 0.1})

An attempt holds the job's claim (one process at a time works on a job), re-opens the bound run
(same run id, the step axis continued from the journal), keeps a heartbeat in the job document,
turns SIGTERM/SIGUSR1/SIGUSR2 (SLURM's warning, scancel) and SIGINT (Ctrl-C) into a recorded
preemption, closes the run's live backends and records the outcome in one update:

    success    status "complete",  tracker state "finished",  exit code 0
    exception  status "failed",    tracker state "failed",    exit code 1, traceback in error.log
    signal     status "preempted", tracker state "preempted", exit code 128 + signal number

The journal's `finish` event is the commit point: an attempt killed after writing it but before
its document was updated is recorded from the journal by the next `execute` or `finish`, never
run again (a preempted one is resumed by that same `execute`).

A file system that refuses writes (full, over quota, read-only: STORAGE_ERRNOS) stops an attempt
from outside, as a signal does: it is recorded `preempted` with exit code 1 and the OSError in
`error`, and resumes from its last checkpoint once there is room. When not even that can be
written, the document still says `running`; the attempt's process is gone once the pass ends, so
`is_stale` calls it stale at once on this host and the next `execute` resumes it. Ctrl-C while
the run opens (before the attempt's own handlers are in place) is a preemption too.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aexp import heartbeat
from aexp.attempts import (
    ERROR_LOG,
    STORAGE_ERRNOS,
    NothingToRun,
    attempt_identity,
    ended_in_journal,
    is_stale,
    is_storage_error,
    record_end,
    record_error,
    settle_from_journal,
    start_attempt,
    warn,
)
from aexp.binding import get_binding, write_init_event
from aexp.errors import AexpError, BindingError
from aexp.joblock import job_claim, job_lock
from aexp.journal import JournalWriter, journal_path, read_journal, read_tail
from aexp.mirrors import LiveMirrors, has_live
from aexp.schema import BOUND, COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING
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


class AttemptEnded(AexpError):
    """The attempt the document records as running had ended: its journal says so."""


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


# -- the attempt ------------------------------------------------------------------------------
@contextmanager
def run_lifecycle(
    job: Any,
    *,
    heartbeat_interval: float = 30.0,
    stale_after: float = 300.0,
    artifacts: tuple[str, ...] = (),
    bind: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Iterator[Tracker]:
    """Run one attempt of `job` inside its bound tracker run; yields the `Tracker`.

    The job's status goes running -> complete | failed | preempted with `started_at`,
    `ended_at`, `wallclock_s`; `heartbeat_at` is refreshed every `heartbeat_interval` seconds.
    `artifacts` (paths in the job) are attached to the run when the attempt ends, if they exist.
    `bind(doc)` returns a new binding for an unbound job (bound in the attempt's first update);
    without it an unbound job runs with lifecycle bookkeeping only. Exceptions (and `Preempted`,
    a SystemExit) are recorded, then re-raised.

    Raises JobBusyError if another process works on the job, AttemptEnded if the attempt the
    document shows as running had in fact ended (recorded now from the journal), BindingError
    if the run already finished or failed, OSError if the document cannot be written.
    """
    with job_claim(job):
        current = get_binding(job)
        if current is not None and current["state"] == RUNNING:
            finish = ended_in_journal(job, current)
            if finish is not None:
                settle_from_journal(job, current, finish)
                if not finish.get("preempted"):
                    raise AttemptEnded(f"job {job.id}'s last attempt had ended; recorded it now.")
                # It was preempted (its process died before the document said so): recorded
                # now, and this attempt resumes it.
        binding, bound_now = start_attempt(job, stale_after, bind)
        with _attempt(job, binding, bound_now, heartbeat_interval, artifacts) as tracker:
            yield tracker


@contextmanager
def _attempt(
    job: Any,
    binding: dict[str, Any] | None,
    bound_now: bool,
    heartbeat_interval: float,
    artifacts: tuple[str, ...],
) -> Iterator[Tracker]:
    t0 = time.monotonic()
    tracker = Tracker(job=job, run_id=binding["run_id"] if binding else None)
    mirrors = LiveMirrors(job)
    attempt = binding["attempts"] if binding else None
    beat: heartbeat.Beat | None = None
    opened = False  # the run's step and summary are known (else the document keeps its own)

    def end(state: str, code: int, error: str | None = None, *, preempted: bool = False) -> None:
        # Called with the preemption signals ignored (see below): a second signal must not cut
        # the record short.
        if beat is not None:
            heartbeat.stop(beat)
        unwritten = None
        try:
            _close_run(job, tracker, mirrors, artifacts, code, preempted)
        except OSError as exc:  # a full disk: the document below still records the end
            unwritten = exc.strerror or str(exc)
        record_end(
            job,
            state=state,
            exit_code=code,
            error=error,
            tracker=tracker if opened else None,
            wallclock=time.monotonic() - t0,
            mirror_errors=mirrors.errors,
            mirror_extras=mirrors.extras,
        )
        if unwritten:  # said only once the document is written: else that failure is the news
            warn(job, f"the end of its journal was not written ({unwritten})")

    try:
        if binding is not None:
            _open_run(job, binding, bound_now, tracker, mirrors)
            opened = True
    except KeyboardInterrupt:  # Ctrl-C while the run opens (before the handlers are in place)
        with _preempt_signals(signal.SIG_IGN):
            end(PREEMPTED, 128 + signal.SIGINT, preempted=True)
        raise
    except BaseException as exc:
        error = record_error(job, attempt)
        with _preempt_signals(signal.SIG_IGN):
            if is_storage_error(exc):
                end(PREEMPTED, 1, error, preempted=True)
            else:
                end(FAILED, 1, error)
        raise
    beat = heartbeat.start(job, tracker, heartbeat_interval)
    # The handlers stay in place until the attempt is recorded: while the experiment runs a
    # signal preempts it; once it has returned or raised, further signals are ignored (they
    # often come twice: scancel signals every process of the SLURM job, the batch script
    # forwards its own copy, a user presses Ctrl-C again) and the record is written whole.
    # Installed once per attempt: a sweep of short jobs pays for four handlers, not sixteen.
    try:
        with _preempt_signals(tracker._on_signal):
            try:
                yield tracker
                # Inside the `try`: a signal that lands before this line is a preemption
                # recorded as such (the attempt runs again), never an attempt left unrecorded.
                tracker._closing = True
            except (Preempted, KeyboardInterrupt) as exc:
                tracker._closing = True
                code = exc.code if isinstance(exc, Preempted) else 128 + signal.SIGINT
                end(PREEMPTED, int(code), preempted=True)
                raise
            except BaseException as exc:
                tracker._closing = True
                error = record_error(job, attempt)
                if is_storage_error(exc):  # a full disk stopped it: it resumes, it did not fail
                    end(PREEMPTED, 1, error, preempted=True)
                else:
                    end(FAILED, 1, error)
                raise
            end(FINISHED, 0)
    finally:
        heartbeat.stop(beat)


def _open_run(
    job: Any, binding: dict[str, Any], bound_now: bool, tracker: Tracker, mirrors: LiveMirrors
) -> None:
    path = journal_path(job.path, binding["run_id"])
    writer = JournalWriter(path)
    try:
        last, last_step = _start_journal(job, binding, bound_now, writer)
        tracker.attempt = binding["attempts"]
        tracker.step = max(binding.get("last_step", -1), -1 if last_step is None else last_step)
        tracker.step += 1
        tracker.summary = dict(binding.get("summary") or {})
        # The previous attempt ended cleanly when its `finish` is the journal's last event; if
        # not (killed), the live backends may have lost rows: they are repaired from the journal.
        unclean = last is not None and last.get("event") not in ("finish", "init_run")
        resumed = binding["attempts"] > 1 and has_live(binding)
        journal = read_journal(path) if unclean or resumed else None
        writer.resume_run(attempt=binding["attempts"], **attempt_identity())
    except BaseException:  # the attempt is recorded without its journal (as before it opened)
        writer.close()
        raise
    tracker._journal = writer
    mirrors.open(binding, binding["attempts"], journal, unclean=unclean)
    tracker._mirrors = mirrors


def _start_journal(
    job: Any, binding: dict[str, Any], bound_now: bool, writer: JournalWriter
) -> tuple[dict[str, Any] | None, int | None]:
    """The journal's last event and highest step before this attempt (`read_tail`), after
    writing its `init_run` through `writer` when it has none.

    The journal is opened once per attempt: a run bound by this attempt's first update starts
    it here (there is nothing to read), with `init_run` then this attempt's `resume_run`.
    """
    if bound_now:
        write_init_event(job, binding, writer)
        return None, None
    last, last_step = read_tail(writer.path)
    if last is None:  # the journal was lost, or a binder elsewhere has not written it yet:
        with job_lock(job):  # bind_tracker writes `init_run` under the lock too: write it once
            last, last_step = read_tail(writer.path)
            if last is None:
                write_init_event(job, binding, writer)
    return last, last_step


def _close_run(
    job: Any,
    tracker: Tracker,
    mirrors: LiveMirrors,
    artifacts: tuple[str, ...],
    exit_code: int,
    preempted: bool,
) -> None:
    """Attach the declared result files, close the live backends, then the journal's `finish`
    (the commit point: written only once every backend is closed)."""
    writer = tracker._journal
    if writer is None:
        return
    for name in artifacts:
        path = os.path.join(job.path, name)
        if os.path.exists(path):
            try:
                tracker.log_artifact(name, path)
            except Exception as exc:  # the run still closes
                warn(job, f"result file {name!r} not attached: {exc}")
    mirrors.finish(exit_code, preempted=preempted)
    try:
        writer.finish(exit_code, preempted=preempted)
    finally:
        writer.close()


def finish_run(job: Any) -> dict[str, Any]:
    """Record the end of a run whose last attempt ended without recording it: its process died
    after the journal's `finish`, or the run was left `completed` by an older aexp.

    Never needs a tracker backend: the journal holds the run, and the next sync brings every
    backend up to it. Idempotent; returns the binding. Raises BindingError when the job is not
    bound or its attempt has not ended, JobBusyError when another process works on the job.
    """
    with job_claim(job):
        binding = get_binding(job)
        if binding is None:
            raise BindingError(f"job {job.id} is not bound to a tracker run; nothing to finish.")
        state = binding["state"]
        if state == RUNNING:
            finish = ended_in_journal(job, binding)
            if finish is None:
                raise BindingError(f"job {job.id}'s run is running; it has not ended yet.")
            settle_from_journal(job, binding, finish)
            return get_binding(job) or {}
        if state in (BOUND, PREEMPTED):
            raise BindingError(f"job {job.id}'s run is {state}; it has not ended yet.")
        if state in (FINISHED, FAILED) and binding.get("finished_at"):
            return binding
        path = journal_path(job.path, binding["run_id"])
        last, _ = read_tail(path)
        code = binding.get("exit_code") or 0
        if last is not None and last.get("event") != "finish":
            writer = JournalWriter(path)
            try:
                writer.finish(code)
            finally:
                writer.close()
        final = FINISHED if state in (COMPLETED, FINISHED) and code == 0 else FAILED
        return record_end(job, state=final, exit_code=code)["tracker"]


__all__ = [
    "ERROR_LOG",
    "PREEMPT_SIGNALS",
    "STORAGE_ERRNOS",
    "AttemptEnded",
    "NothingToRun",
    "Preempted",
    "Tracker",
    "finish_run",
    "is_stale",
    "is_storage_error",
    "run_lifecycle",
]
