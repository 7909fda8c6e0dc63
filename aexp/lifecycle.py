"""One execution attempt of a job inside its tracker run: `run_lifecycle` and `Tracker`.

    with run_lifecycle(job) as tracker:
        tracker.log({"loss": 0.1})

An attempt re-opens the bound run (same run id, step axis continued from the last attempt),
keeps a heartbeat in the job document, turns SIGTERM/SIGUSR1/SIGUSR2 (SLURM's time-limit warning,
scancel) and Ctrl-C into a recorded preemption, and records the outcome:

    success    status "complete",  tracker state "completed", exit code 0
    exception  status "failed",    tracker state "failed",    exit code 1, traceback in error.log
    signal     status "preempted", tracker state "preempted", exit code 128 + signal number

With `close=False` (the workflow's execute) a successful or failed run stays open in this process
for the `finish` operation; it is closed at the latest when another run opens or the process exits,
so one attempt writes exactly one W&B offline folder.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from aexp.binding import (
    BOUND,
    COMPLETED,
    FAILED,
    FINISHED,
    PREEMPTED,
    RUNNING,
    adapter_for,
    get_binding,
    handle_for,
    update_binding,
)
from aexp.checkpoint import Checkpoint, CheckpointDamaged, read_checkpoint, write_checkpoint
from aexp.errors import BindingError, TrackerUsageError
from aexp.jobdoc import age_seconds, now_iso, update_doc
from aexp.settings import PREEMPT_SIGNAL_NAMES
from aexp.trackers import RunHandle, TrackerAdapter, clean_metrics

PREEMPT_SIGNALS = tuple(signal.Signals[f"SIG{name}"] for name in PREEMPT_SIGNAL_NAMES)
ERROR_LOG = "error.log"


class Preempted(SystemExit):
    """Raised inside the experiment when the attempt was signalled; exits with 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@dataclass
class _LiveRun:
    job: Any
    adapter: TrackerAdapter
    handle: RunHandle
    artifacts: tuple[str, ...] = ()


_live: dict[str, _LiveRun] = {}


@dataclass
class Tracker:
    """What an experiment gets: log metrics and artifacts, know the step, checkpoint and resume.

    `step` is the step the next `log` records at. It continues across attempts, so a resumed run
    has one continuous step axis; log the experiment's own counter (epoch, iteration) as a metric.
    """

    job: Any
    run_id: str | None
    step: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    _adapter: TrackerAdapter | None = None
    _handle: RunHandle | None = None
    _preempt_signal: int | None = None
    _checkpoints_used: bool = False
    _checkpoint_seq: int | None = None  # of the newest stored checkpoint (-1: none), once known

    def log(self, metrics: Mapping[str, Any], *, step: int | None = None) -> None:
        """Record one row of metrics at `step` (default: the next step); see `clean_metrics`."""
        row = clean_metrics(metrics)
        if step is not None:
            if step < self.step:
                raise TrackerUsageError(f"step {step} is behind the run's next step {self.step}.")
            self.step = step
        if self._adapter is not None and self._handle is not None:
            self._adapter.log(self._handle, row, step=self.step)
        self.summary.update(row)
        self.step += 1

    def log_artifact(self, name: str, path: str | os.PathLike) -> None:
        """Attach a file or directory (relative paths are inside the job) to the run."""
        full = Path(self.job.path, path)
        if self._adapter is not None and self._handle is not None:
            self._adapter.log_artifact(self._handle, name, full)

    @property
    def preempt_requested(self) -> bool:
        """True once a preemption signal arrived; the next `checkpoint` saves and stops."""
        return self._preempt_signal is not None

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        """Save `state` (JSON-serialisable) to the job's workspace; stop here if preemption was
        requested.

        An experiment that checkpoints is stopped only at its checkpoints, so it always resumes
        from a consistent state. One that never checkpoints is stopped at the signal itself.
        A checkpoint interrupted by a kill or torn by a power loss leaves the previous one in
        place (aexp/checkpoint.py).
        """
        self._checkpoints_used = True
        if self._checkpoint_seq is None:  # the experiment did not load: learn the newest seq
            self._load(report=False)
        seq = self._checkpoint_seq + 1
        write_checkpoint(self.job.path, seq, self.step, state)
        self._checkpoint_seq = seq
        if self._preempt_signal is not None:
            raise Preempted(self._preempt_signal)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The state saved by the last `checkpoint` of this job, or None.

        If no checkpoint is intact, that is reported on stderr and treated as absent: the
        experiment starts over rather than failing on every attempt.
        """
        checkpoint = self._load()
        return None if checkpoint is None else checkpoint.state

    def _load(self, *, report: bool = True) -> Checkpoint | None:
        try:
            checkpoint = read_checkpoint(self.job.path)
        except CheckpointDamaged as exc:
            if report:
                print(f"warning: job {self.job.id}: {exc}; starting over.", file=sys.stderr)
            checkpoint = None
        self._checkpoint_seq = -1 if checkpoint is None else checkpoint.seq
        return checkpoint

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = self._preempt_signal is None
        self._preempt_signal = signum
        if not self._checkpoints_used or not first:
            raise Preempted(signum)


_HOST = os.uname().nodename  # socket.gethostname(), without importing socket


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
    if attempt.get("host") == _HOST and isinstance(pid, int) and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, someone else's
            pass
    slurm_job = os.environ.get("SLURM_JOB_ID")
    return bool(
        slurm_job
        and attempt.get("slurm_job_id") == slurm_job
        and attempt.get("slurm_restart_count") != os.environ.get("SLURM_RESTART_COUNT", "0")
    )


def _start_attempt(job: Any, stale_after: float) -> dict[str, Any] | None:
    """Mark the job running (and its run's attempt count) in one locked update."""
    started = now_iso()
    result: dict[str, Any] = {}

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        binding = get_binding(job, doc)
        if binding is not None and binding["state"] == RUNNING and not is_stale(doc, stale_after):
            raise BindingError(
                f"job {job.id} is already executing elsewhere (heartbeat "
                f"{age_seconds(doc.get('heartbeat_at')):.0f} s ago)."
            )
        updates: dict[str, Any] = {
            "status": "running",
            "attempt": _attempt_identity(),
            "started_at": started,
            "heartbeat_at": started,
            "ended_at": None,
            "wallclock_s": None,
        }
        if binding is not None:
            if binding["state"] in (COMPLETED, FINISHED):
                raise BindingError(
                    f"job {job.id}'s run already {binding['state']}; nothing to run."
                )
            if binding["state"] == FAILED:
                raise BindingError(
                    f"job {job.id}'s run failed; re-arm it first with: aexp rearm {job.id}"
                )
            binding = {
                **binding,
                "state": RUNNING,
                "attempts": binding.get("attempts", 0) + 1,
                "exit_code": None,
                "error": None,
                "closed": False,
                "synced_at": None,  # this attempt writes a fragment the last sync did not see
            }
            updates["tracker"] = binding
            result.update(binding)
        return updates

    update_doc(job, change)
    return result or None


class _Heartbeat(threading.Thread):
    def __init__(self, job: Any, tracker: Tracker, interval: float) -> None:
        super().__init__(daemon=True, name=f"aexp-heartbeat-{job.id[:8]}")
        self.job, self.tracker, self.interval = job, tracker, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with suppress(Exception):  # a missed beat only makes the job look stale sooner

                def beat(doc: dict[str, Any]) -> dict[str, Any] | None:
                    if self.stopped.is_set():  # the attempt ended while this beat waited
                        return None
                    updates: dict[str, Any] = {"heartbeat_at": now_iso()}
                    if isinstance(doc.get("tracker"), dict) and self.tracker.run_id:
                        updates["tracker"] = {**doc["tracker"], "last_step": self.tracker.step - 1}
                    return updates

                update_doc(self.job, beat)


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


def close_live_run(job: Any, *, record: bool = True) -> bool:
    """Close the job's run if it is open in this process; True if it was.

    Logs the declared result files as artifacts first, then closes the run with the exit code
    recorded in the binding, and records `closed: true` (unless `record` is False: the caller
    records it in its own update).
    """
    live = _live.pop(job.id, None)
    if live is None:
        return False
    binding = get_binding(job) or {}
    exit_code = binding.get("exit_code") or 0
    for name in live.artifacts:
        path = Path(job.path, name)
        if path.exists():
            live.adapter.log_artifact(live.handle, name, path)
    live.adapter.finish(
        live.handle, exit_code=exit_code, preempted=binding.get("state") == PREEMPTED
    )
    if record:
        update_binding(job, closed=True)
    return True


@atexit.register
def _close_all_live_runs() -> None:
    for job_id in list(_live):
        with suppress(Exception):
            close_live_run(_live[job_id].job)


def _record_error(job: Any, attempt: int | None) -> str:
    exc_type, exc, _ = sys.exc_info()
    line = f"{exc_type.__name__}: {exc}" if exc_type else "unknown error"
    with open(Path(job.path, ERROR_LOG), "a", encoding="utf-8") as fh:
        fh.write(f"--- {now_iso()} attempt {attempt}\n{traceback.format_exc()}\n")
    return line.splitlines()[0][:500]


@contextmanager
def run_lifecycle(
    job: Any,
    *,
    close: bool = True,
    heartbeat_interval: float = 30.0,
    stale_after: float = 300.0,
    artifacts: tuple[str, ...] = (),
) -> Iterator[Tracker]:
    """Run one attempt of `job` inside its bound tracker run; yields the `Tracker`.

    The job's status goes running -> complete | failed | preempted with `started_at`,
    `ended_at`, `wallclock_s`; `heartbeat_at` is refreshed every `heartbeat_interval` seconds.
    Exceptions (and `Preempted`, a SystemExit) are recorded, then re-raised. An unbound job runs
    with lifecycle bookkeeping only. Raises BindingError if another process is running the job
    (fresh heartbeat) or the run already completed.
    """
    binding = _start_attempt(job, stale_after)
    t0 = time.monotonic()
    tracker = Tracker(job=job, run_id=binding["run_id"] if binding else None)
    if binding is not None:
        tracker.step = binding.get("last_step", -1) + 1
        tracker.summary = dict(binding.get("summary") or {})
        for other in [j for j in _live if j != job.id]:
            close_live_run(_live[other].job)
        stale = _live.pop(job.id, None)
        if stale is not None:  # an earlier attempt in this process left it open
            with suppress(Exception):
                stale.adapter.finish(stale.handle, exit_code=1)
        try:
            adapter = adapter_for(binding)
            handle = adapter.resume_run(
                handle_for(job, binding), workdir=job.path, attempt=binding["attempts"]
            )
        except BaseException:
            error = _record_error(job, binding["attempts"])
            _end(job, tracker, t0, status="failed", state=FAILED, exit_code=1, error=error)
            raise
        recorded = adapter.last_step(handle, workdir=job.path)
        if recorded is not None:  # a killed attempt may have logged past its last heartbeat
            tracker.step = max(tracker.step, recorded + 1)
        tracker._adapter, tracker._handle = adapter, handle
        _live[job.id] = _LiveRun(job, adapter, handle, tuple(artifacts))
    heartbeat = _Heartbeat(job, tracker, heartbeat_interval)
    heartbeat.start()
    try:
        with _preempt_signals(tracker._on_signal):
            yield tracker
    except (Preempted, KeyboardInterrupt) as exc:
        code = exc.code if isinstance(exc, Preempted) else 128 + signal.SIGINT
        # A signal often comes twice (scancel signals every process of the SLURM job, and the
        # batch script forwards its own copy): the second must not kill the process mid-record.
        with _preempt_signals(signal.SIG_IGN):
            heartbeat.stopped.set()
            _end(job, tracker, t0, status="preempted", state=PREEMPTED, exit_code=code)
            close_live_run(job)  # the process is about to exit: close now, marked preempting
        raise
    except BaseException:
        heartbeat.stopped.set()
        error = _record_error(job, binding["attempts"] if binding else None)
        _end(job, tracker, t0, status="failed", state=FAILED, exit_code=1, error=error)
        if close:
            close_live_run(job)
        raise
    else:
        heartbeat.stopped.set()
        _end(job, tracker, t0, status="complete", state=COMPLETED, exit_code=0)
        if close:
            close_live_run(job)
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=5)


def _end(
    job: Any,
    tracker: Tracker,
    t0: float,
    *,
    status: str,
    state: str,
    exit_code: int,
    error: str | None = None,
) -> None:
    ended = now_iso()

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        updates: dict[str, Any] = {
            "status": status,
            "ended_at": ended,
            "heartbeat_at": ended,
            "wallclock_s": round(time.monotonic() - t0, 3),
        }
        binding = doc.get("tracker")
        if tracker.run_id and isinstance(binding, dict):
            updates["tracker"] = {
                **binding,
                "state": state,
                "exit_code": exit_code,
                "error": error,
                "last_step": tracker.step - 1,
                "summary": tracker.summary,
            }
        return updates

    update_doc(job, change)


def finish_run(job: Any) -> dict[str, Any]:
    """Close the job's run after its last attempt ended and record the final state.

    completed -> finished (exit 0); failed stays failed with its exit code. Idempotent.
    Returns the binding.
    """
    binding = get_binding(job)
    if binding is None:
        raise BindingError(f"job {job.id} is not bound to a tracker run; nothing to finish.")
    if binding["state"] not in (COMPLETED, FAILED, FINISHED):
        raise BindingError(f"job {job.id}'s run is {binding['state']}; it has not ended yet.")
    if not close_live_run(job, record=False) and not binding.get("closed"):
        # The attempt's process died after recording its end: re-open only to close it.
        adapter = adapter_for(binding)
        handle = adapter.resume_run(
            handle_for(job, binding), workdir=job.path, attempt=binding.get("attempts", 1)
        )
        adapter.finish(handle, exit_code=binding.get("exit_code") or 0)
    final = FINISHED if binding["state"] in (COMPLETED, FINISHED) else FAILED
    return update_binding(
        job, state=final, closed=True, finished_at=binding.get("finished_at") or now_iso()
    )


__all__ = ["BOUND", "Preempted", "Tracker", "close_live_run", "finish_run", "run_lifecycle"]
