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

import errno
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aexp import heartbeat
from aexp.binding import get_binding, update_backend, write_init_event
from aexp.errors import AexpError, BindingError, JobBusyError
from aexp.jobdoc import age_seconds, job_claim, now_iso, strict_json, update_doc
from aexp.journal import JournalWriter, journal_path, read_journal, read_tail
from aexp.mirrors import LiveMirrors, has_live
from aexp.schema import BOUND, COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING
from aexp.tracker import Preempted, Tracker

# SIGINT too: Ctrl-C is a preemption like the others (the experiment runs on to its next
# checkpoint), not a KeyboardInterrupt in the middle of an epoch.
PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)
ERROR_LOG = "error.log"
# A file system that is full, over quota or read-only stops an attempt from outside, as a
# signal does: not the experiment's failure. Such an attempt is recorded preempted (exit code 1,
# the OSError in `error`) and resumes from its last checkpoint once there is room again.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_HOST = os.uname().nodename  # socket.gethostname(), without importing socket


class AttemptEnded(AexpError):
    """The attempt the document records as running had ended: its journal says so."""


class NothingToRun(BindingError):
    """The run has ended (finished, or failed and not re-armed): there is no attempt to start.

    Found under the job's claim, so it also means that another process finished the job after
    this one chose to execute it; the workflow skips the job quietly then.
    """


def _attempt_identity() -> dict[str, Any]:
    """Where this attempt runs, so another process can tell whether it is still alive."""
    return {
        "host": _HOST,
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_restart_count": os.environ.get("SLURM_RESTART_COUNT", "0"),
    }


def is_stale(doc: Mapping[str, Any], stale_after: float) -> bool:
    """True if the attempt the document records as running is known to be dead.

    Dead means: its heartbeat is missing or older than `stale_after` seconds; or it ran on this
    host and its process is gone; or it ran in the SLURM job this process belongs to and SLURM
    has restarted that job since (a requeue after a node failure). The last two need no waiting.
    """
    age = age_seconds(doc.get("heartbeat_at"))
    if age is None or age > stale_after:
        return True
    attempt = doc.get("attempt")
    if not isinstance(attempt, dict):
        return False
    pid = attempt.get("pid")
    if attempt.get("host") == _HOST and type(pid) is int and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):  # alive and someone else's / not a pid
            pass
    slurm_job = os.environ.get("SLURM_JOB_ID")
    return bool(
        slurm_job
        and attempt.get("slurm_job_id") == slurm_job
        and attempt.get("slurm_restart_count") != os.environ.get("SLURM_RESTART_COUNT", "0")
    )


# -- the records at the start and the end of an attempt ---------------------------------------
def _start_attempt(
    job: Any, stale_after: float, bind: Callable[[dict[str, Any]], dict[str, Any]] | None
) -> dict[str, Any] | None:
    """Mark the job running (binding it first when `bind` is given) in one locked update.

    Returns the binding as stored (None for an unbound job run without a tracker).
    """
    started = now_iso()
    result: dict[str, Any] = {}

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        binding = get_binding(job, doc)
        if binding is None and bind is not None:
            binding = bind(doc)
        if binding is not None:
            state = binding["state"]
            if state == RUNNING and not is_stale(doc, stale_after):
                raise JobBusyError(
                    f"job {job.id} is already executing elsewhere (heartbeat "
                    f"{age_seconds(doc.get('heartbeat_at')):.0f} s ago)."
                )
            if state in (COMPLETED, FINISHED):
                raise NothingToRun(f"job {job.id}'s run already {state}; nothing to run.")
            if state == FAILED:
                raise NothingToRun(
                    f"job {job.id}'s run failed; re-arm it first with: aexp rearm {job.id}"
                )
            binding = {
                **binding,
                "state": RUNNING,
                "attempts": binding.get("attempts", 0) + 1,
                "exit_code": None,
                "error": None,
                "closed": False,
                "synced_at": None,  # this attempt adds to the run: every mirror syncs again
            }
            for name in binding.get("backends") or {}:
                binding = update_backend(binding, name, synced_at=None)
            result.update(binding)
        updates: dict[str, Any] = {
            "status": "running",
            "attempt": _attempt_identity(),
            "started_at": started,
            "heartbeat_at": started,
            "ended_at": None,
            "wallclock_s": None,
        }
        if binding is not None:
            updates["tracker"] = binding
        return updates

    update_doc(job, change)
    return result or None


def _record_end(
    job: Any,
    *,
    state: str,
    exit_code: int,
    error: str | None = None,
    tracker: Tracker | None = None,
    wallclock: float | None = None,
    mirror_errors: Mapping[str, str] | None = None,
    mirror_extras: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Record an attempt's outcome (and the run's, unless preempted) in one locked update."""
    ended = now_iso()
    status = {FINISHED: "complete", FAILED: "failed", PREEMPTED: "preempted"}[state]

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        updates: dict[str, Any] = {"status": status, "ended_at": ended, "heartbeat_at": ended}
        if wallclock is not None:
            updates["wallclock_s"] = round(wallclock, 3)
        binding = doc.get("tracker")
        if isinstance(binding, dict) and binding.get("run_id"):
            binding = {
                **binding,
                "state": state,
                "exit_code": exit_code,
                "error": error,
                "closed": True,
            }
            if state != PREEMPTED:
                binding["finished_at"] = binding.get("finished_at") or ended
            if tracker is not None:
                binding["last_step"] = tracker.step - 1
                binding["summary"] = strict_json(tracker.summary)
            for name, reason in (mirror_errors or {}).items():
                binding = update_backend(binding, name, error=reason)
            for name, extra in (mirror_extras or {}).items():
                binding = update_backend(binding, name, extra=dict(extra))
            updates["tracker"] = binding
        return updates

    return update_doc(job, change)


def is_storage_error(exc: BaseException) -> bool:
    """True for an OSError of a file system that refuses writes (STORAGE_ERRNOS)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def _warn(job: Any, message: str) -> None:
    print(f"warning: job {job.id}: {message}", file=sys.stderr)


def _record_error(job: Any, attempt: int | None) -> str:
    exc_type, exc, _ = sys.exc_info()
    line = f"{exc_type.__name__}: {exc}" if exc_type else "unknown error"
    try:
        with open(Path(job.path, ERROR_LOG), "a", encoding="utf-8") as fh:
            fh.write(f"--- {now_iso()} attempt {attempt}\n{traceback.format_exc()}\n")
    except OSError as err:  # a full disk or read-only workspace: the line below still says it
        line += f" (error.log not written: {err.strerror or err})"
    return line.splitlines()[0][:500]


@contextmanager
def _preempt_signals(handler: Any) -> Iterator[None]:
    """Install `handler` for the preemption signals (main thread only), restore them after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in PREEMPT_SIGNALS}
    try:
        yield
    finally:
        for sig, restored in previous.items():
            signal.signal(sig, restored)


def _ended_in_journal(job: Any, binding: Mapping[str, Any]) -> dict[str, Any] | None:
    """The journal's `finish` event of the attempt the binding records as running, if it has
    one (the attempt ended but its process died before recording that in the document)."""
    last, _ = read_tail(journal_path(job.path, binding["run_id"]))
    if last is not None and last.get("event") == "finish":
        return last
    return None


def _settle_from_journal(job: Any, binding: Mapping[str, Any], finish: Mapping[str, Any]) -> None:
    code = finish.get("exit_code")
    code = code if type(code) is int else 1
    state = PREEMPTED if finish.get("preempted") else (FINISHED if code == 0 else FAILED)
    journal = read_journal(journal_path(job.path, binding["run_id"]))
    tracker = Tracker(job=job, run_id=binding["run_id"], step=(journal.last_step or -1) + 1)
    tracker.summary = journal.summary
    _record_end(job, state=state, exit_code=code, tracker=tracker)


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
            finish = _ended_in_journal(job, current)
            if finish is not None:
                _settle_from_journal(job, current, finish)
                if not finish.get("preempted"):
                    raise AttemptEnded(f"job {job.id}'s last attempt had ended; recorded it now.")
                # It was preempted (its process died before the document said so): recorded
                # now, and this attempt resumes it.
        binding = _start_attempt(job, stale_after, bind)
        with _attempt(job, binding, heartbeat_interval, artifacts) as tracker:
            yield tracker


@contextmanager
def _attempt(
    job: Any,
    binding: dict[str, Any] | None,
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
        # Called with the preemption signals ignored: a signal often comes twice (scancel
        # signals every process of the SLURM job, the batch script forwards its own copy, a
        # user presses Ctrl-C again), and the second must not cut the record short.
        if beat is not None:
            heartbeat.stop(beat)
        unwritten = None
        try:
            _close_run(job, tracker, mirrors, artifacts, code, preempted)
        except OSError as exc:  # a full disk: the document below still records the end
            unwritten = exc.strerror or str(exc)
        _record_end(
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
            _warn(job, f"the end of its journal was not written ({unwritten})")

    try:
        if binding is not None:
            _open_run(job, binding, tracker, mirrors)
            opened = True
    except KeyboardInterrupt:  # Ctrl-C while the run opens (before the handlers are in place)
        with _preempt_signals(signal.SIG_IGN):
            end(PREEMPTED, 128 + signal.SIGINT, preempted=True)
        raise
    except BaseException as exc:
        error = _record_error(job, attempt)
        with _preempt_signals(signal.SIG_IGN):
            if is_storage_error(exc):
                end(PREEMPTED, 1, error, preempted=True)
            else:
                end(FAILED, 1, error)
        raise
    beat = heartbeat.start(job, tracker, heartbeat_interval)
    try:
        with _preempt_signals(tracker._on_signal):
            yield tracker
    except (Preempted, KeyboardInterrupt) as exc:
        code = exc.code if isinstance(exc, Preempted) else 128 + signal.SIGINT
        with _preempt_signals(signal.SIG_IGN):
            end(PREEMPTED, int(code), preempted=True)
        raise
    except BaseException as exc:
        error = _record_error(job, attempt)
        with _preempt_signals(signal.SIG_IGN):
            if is_storage_error(exc):  # a full disk stopped it: it resumes, it did not fail
                end(PREEMPTED, 1, error, preempted=True)
            else:
                end(FAILED, 1, error)
        raise
    else:
        with _preempt_signals(signal.SIG_IGN):
            end(FINISHED, 0)
    finally:
        heartbeat.stop(beat)


def _open_run(job: Any, binding: dict[str, Any], tracker: Tracker, mirrors: LiveMirrors) -> None:
    path = journal_path(job.path, binding["run_id"])
    last, last_step = read_tail(path)
    if last is None:  # bound in this attempt's first update, or the journal was lost
        write_init_event(job, binding)
    tracker.attempt = binding["attempts"]
    tracker.step = max(binding.get("last_step", -1), -1 if last_step is None else last_step) + 1
    tracker.summary = dict(binding.get("summary") or {})
    # The previous attempt ended cleanly when its `finish` is the journal's last event; if not
    # (killed), the live backends may have lost rows: they are repaired from the journal.
    unclean = last is not None and last.get("event") not in ("finish", "init_run")
    resumed = binding["attempts"] > 1 and has_live(binding)
    journal = read_journal(path) if unclean or resumed else None
    writer = JournalWriter(path)
    writer.resume_run(attempt=binding["attempts"], **_attempt_identity())
    tracker._journal = writer
    mirrors.open(binding, binding["attempts"], journal, unclean=unclean)
    tracker._mirrors = mirrors


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
        path = Path(job.path, name)
        if path.exists():
            try:
                tracker.log_artifact(name, path)
            except Exception as exc:  # the run still closes
                _warn(job, f"result file {name!r} not attached: {exc}")
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
            finish = _ended_in_journal(job, binding)
            if finish is None:
                raise BindingError(f"job {job.id}'s run is running; it has not ended yet.")
            _settle_from_journal(job, binding, finish)
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
        return _record_end(job, state=final, exit_code=code)["tracker"]


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
