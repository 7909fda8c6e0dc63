"""One execution attempt of a job, as one object: what it reads when it starts, what it writes.

    attempt = Attempt(job, stale_after=300.0, bind=...)
    tracker = attempt.begin()     # under the job's claim: the document read once; refusals
    attempt.open_run()            # the journal and the live backends; the heartbeat
    ...                           # the experiment logs through `tracker`
    attempt.end(FINISHED, 0)      # the run closed, the outcome written: one document update

aexp.lifecycle.run_lifecycle drives it (signals, exceptions); this module is what the attempt
knows and records. An attempt reads the job document once, under the job's claim, and takes
from that read all it needs (the binding, the attempt count, the run's spec); the binding,
the journal, the live backends and the heartbeat get what they need from the attempt. It writes
the document once when it ends. Its start is recorded in the run's journal at once (the
`resume_run` event: attempt number, host, pid, SLURM job) and in the document by its first
heartbeat, FIRST_RECORD_S after it started: an attempt that ends sooner costs one document
write, not two (each is an atomic replace: ~0.2-0.4 ms of a file system's metadata work).
aexp.state reads a job's state from both, so status, stale detection and the sync see a running
attempt from its first moment on. A job's first attempt binds it: the binding goes into the
journal's `init_run` at once and into the document with the attempt's first record.

Refusals, each found before anything is written (`begin`):

    corrupt document or binding     BindingError (aexp/schema.py names the field)
    run finished or completed       NothingToRun ("already finished")
    run failed                      NothingToRun ("re-arm it first")
    running, not stale              JobBusyError ("already executing elsewhere")
    ended in its journal            AttemptEnded, after recording that end (a preempted one is
                                    recorded and resumed instead)

The journal's `finish` event is the commit point: an attempt killed after writing it but before
its document was updated is recorded from the journal by the next attempt or `finish_run`,
never run again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from aexp import heartbeat
from aexp.agent.actor import with_action
from aexp.binding import (
    get_binding,
    pending_binding,
    update_backend,
    write_init_event,
)
from aexp.errors import AttemptEnded, JobBusyError, NothingToRun
from aexp.jobdoc import HeldDoc, age_seconds, hold_doc, now_iso, strict_json, update_doc
from aexp.joblock import job_lock
from aexp.journal import JournalWriter, Tail, journal_file, read_journal
from aexp.mirrors import LiveMirrors, has_live
from aexp.outcome import STATUS_OF, settle, warn
from aexp.schema import COMPLETED, FAILED, FINISHED, PREEMPTED, RUNNING
from aexp.spec import run_spec
from aexp.stallwatch import StallWatch
from aexp.state import Mark, attempt_identity, is_stale, unrecorded_attempt
from aexp.tracker import Tracker
from aexp.usage import Usage

# Seconds after its start at which an attempt's first heartbeat records it in the document.
FIRST_RECORD_S = 1.0
# What a running attempt sets in its binding (`Attempt.begin`), recorded with its start.
_RUNNING_KEYS = ("state", "attempts", "exit_code", "error", "closed", "synced_at")

Binder = Callable[[Mapping[str, Any]], dict[str, Any]]


class Attempt:
    """One execution attempt of `job` (module docstring).

    `bind(spec)` returns a new binding for an unbound job, given the run's spec (bound by this
    attempt); without it an unbound job runs with the lifecycle bookkeeping only. `spec`: the
    run's spec (`aexp.spec.run_spec`) when the caller has it. `artifacts`: paths in the job
    attached to the run when the attempt ends, if they exist. `stall_watch`: preempts the
    attempt when its journal stops progressing (aexp.stallwatch; None: it is left alone).
    `actor`: who launches the attempt (aexp.agent.actor), recorded with its start as
    `job.doc["actor"]["launch"]` (docs/job-document.md).
    """

    def __init__(
        self,
        job: Any,
        *,
        heartbeat_interval: float = 30.0,
        stale_after: float = 300.0,
        artifacts: tuple[str, ...] = (),
        bind: Binder | None = None,
        spec: Mapping[str, Any] | None = None,
        stall_watch: StallWatch | None = None,
        actor: Mapping[str, Any] | None = None,
    ) -> None:
        self.job = job
        self.stall_watch = stall_watch
        self.actor = actor
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.artifacts = artifacts
        self._bind = bind
        self._spec = spec
        self.doc: dict[str, Any] = {}
        self.binding: dict[str, Any] | None = None  # as this attempt runs it (state running)
        self.bound_now: dict[str, Any] | None = None  # the binding this attempt made (as bound)
        self.number: int | None = None
        self.identity = attempt_identity()
        self.started_at = ""
        self.tracker: Tracker | None = None
        self.mirrors = LiveMirrors(job)
        self.opened = False  # the run's step and summary are known (else the document's stand)
        self._t0 = 0.0
        self._usage: Usage | None = None
        self.used: dict[str, Any] = {}  # wall_s, peak_rss_mb: what the `finish` event recorded
        self._tail = Tail()
        self._writer: JournalWriter | None = None
        self._held: HeldDoc | None = None
        self._beat: heartbeat.Beat | None = None
        self._running_recorded = False

    @property
    def spec(self) -> Mapping[str, Any]:
        """The run's group, tags and config (`aexp.spec.run_spec`), computed once."""
        if self._spec is None:
            actor = self.binding.get("started_by") if self.binding is not None else self.actor
            self._spec = run_spec(self.job, doc=self.doc, actor=actor)
        return self._spec

    # -- the start ----------------------------------------------------------------------------
    def begin(self) -> Tracker:
        """Read the job's document (once) and judge whether this attempt may run; returns the
        attempt's Tracker. Call it holding the job's claim (`aexp.joblock.job_claim`).

        Writes nothing, except the end of an earlier attempt that only its journal records.
        Raises the refusals of the module docstring, and OSError when the journal cannot be
        read.
        """
        job = self.job
        self.started_at = now_iso()
        self._t0 = time.monotonic()
        self._usage = Usage.start()  # wall time and peak memory, for `aexp resources`
        # The one read: under the claim, the document as it is; held open, so that the end is
        # written on top of it without reading it again (`update_doc(..., base=...)`).
        self._held = hold_doc(job)
        self.doc = self._held.doc
        binding = get_binding(job, self.doc)
        if binding is None:
            binding = pending_binding(job.path)
        if binding is not None:
            binding = self._judge(binding)
        elif self._bind is not None:
            binding = self.bound_now = self._bind(self.spec)
        if binding is not None:
            self.number = max(binding.get("attempts", 0), self._tail.attempt or 0) + 1
            binding = {
                **binding,
                "state": RUNNING,
                "attempts": self.number,
                "exit_code": None,
                "error": None,
                "closed": False,
                "synced_at": None,  # this attempt adds to the run: every mirror syncs again
            }
            for name in binding.get("backends") or {}:
                binding = update_backend(binding, name, synced_at=None)
        self.binding = binding
        self.tracker = Tracker(job=job, run_id=binding["run_id"] if binding else None)
        return self.tracker

    def _judge(self, binding: dict[str, Any]) -> dict[str, Any]:
        """Refuse what cannot run, record an end only the journal knows; returns the binding
        this attempt starts from."""
        job = self.job
        state = binding["state"]
        if state in (COMPLETED, FINISHED):
            raise NothingToRun(f"job {job.id}'s run already {state}; nothing to run.")
        if state == FAILED:
            raise NothingToRun(
                f"job {job.id}'s run failed; re-arm it first with: aexp rearm {job.id}"
            )
        self._writer = JournalWriter(journal_file(job.path, binding["run_id"]))
        self._tail = self._writer.tail()
        later = unrecorded_attempt(self._tail, binding)
        if later is None and state != RUNNING:
            return binding
        mark = later or Mark.of_doc(self.doc)
        if not mark.ended and not is_stale(mark, self.stale_after):
            age = age_seconds(mark.heartbeat_at) or 0.0
            raise JobBusyError(
                f"job {job.id} is already executing elsewhere (heartbeat {age:.0f} s ago)."
            )
        if not mark.ended:
            return binding  # its process died: this attempt resumes the run
        settled = settle(job, binding, self._tail)
        if self._tail.last.get("preempted"):  # recorded now; this attempt resumes it
            return settled
        raise AttemptEnded(f"job {job.id}'s last attempt had ended; recorded it now.")

    def open_run(self) -> None:
        """Open the run: its journal (started when this attempt bound it, or when it was lost),
        this attempt's `resume_run`, the step axis continued, the live backends (repaired from
        the journal first when the previous attempt did not end cleanly); then the heartbeat.
        A job run without a binding gets the heartbeat only. Raises what writing the journal
        raises (the caller records the attempt as failed, or preempted by a full disk)."""
        binding = self.binding
        if binding is not None:
            self._open_journal(binding)
        self._beat = heartbeat.start(self.beat, self.heartbeat_interval, first=FIRST_RECORD_S)

    def _open_journal(self, binding: dict[str, Any]) -> None:
        job, tracker = self.job, self.tracker
        path = journal_file(job.path, binding["run_id"])
        writer = self._writer or JournalWriter(path, new=self.bound_now is not None)
        self._writer = None
        try:
            tail = self._tail
            if self.bound_now is not None:  # the binding goes into the journal as it was made
                write_init_event(job, self.bound_now, writer, spec=self.spec, record=True)
            elif tail.last is None:  # the journal was lost, or a binder elsewhere has not
                with job_lock(job):  # written it yet: bind_tracker writes it under the lock too
                    tail = writer.tail()
                    if tail.last is None:
                        write_init_event(job, binding, writer, spec=self.spec)
            last = tail.last
            tracker.attempt = self.number
            logged = -1 if tail.last_step is None else tail.last_step
            tracker.step = max(binding.get("last_step", -1), logged) + 1
            # The previous attempt ended cleanly when its `finish` is the journal's last event;
            # if not (killed), the live backends may have lost rows: they are repaired from it.
            unclean = last is not None and last.get("event") not in ("finish", "init_run")
            resumed = self.number > 1 and has_live(binding)
            # Rows the document's summary does not cover (an attempt killed before its end was
            # recorded): the summary starts from the journal's, not from this attempt's rows.
            lagging = logged > binding.get("last_step", -1)
            journal = read_journal(path) if unclean or resumed or lagging else None
            covered = journal is None or not (unclean or lagging)
            tracker.summary = dict(binding.get("summary") or {}) if covered else journal.summary
            writer.resume_run(attempt=self.number, **self.identity)
        except BaseException:  # the attempt is recorded without its journal (as before it opened)
            writer.close()
            raise
        tracker._journal = writer
        self.opened = True
        self.mirrors.open(binding, self.number, journal, unclean=unclean, spec=lambda: self.spec)
        tracker._mirrors = self.mirrors

    # -- the record ---------------------------------------------------------------------------
    def _ours(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """The binding to update in `doc`: the document's own when it is this attempt's run,
        this attempt's when the document has none yet; None when the document was bound to
        another run meanwhile (left alone)."""
        current = doc.get("tracker")
        if current is None:
            return dict(self.binding) if self.binding else None
        if (
            isinstance(current, dict)
            and self.binding
            and current.get("run_id") == self.binding["run_id"]
        ):
            return current
        return None

    def _running(self, doc: Mapping[str, Any], now: str) -> dict[str, Any]:
        """The document's updates that record this attempt as running."""
        updates: dict[str, Any] = {
            "status": "running",
            "attempt": self.identity,
            "started_at": self.started_at,
            "heartbeat_at": now,
            "ended_at": None,
            "wallclock_s": None,
        }
        current = self._ours(doc)
        if current is not None:
            binding = {**current, **{key: self.binding[key] for key in _RUNNING_KEYS}}
            for name in current.get("backends") or {}:
                binding = update_backend(binding, name, synced_at=None)
            if self.opened:
                binding["last_step"] = self.tracker.step - 1
            updates["tracker"] = binding
            launch = {**(self.actor or {}), "run_id": binding["run_id"], "attempt": self.number}
            updates["actor"] = with_action(doc, "launch", launch)
        return updates

    def beat(self, beat: heartbeat.Beat) -> None:
        """One heartbeat (called by aexp.heartbeat's thread): the first records the attempt as
        running; each refreshes `heartbeat_at` and `tracker.last_step`."""

        first = not self._running_recorded
        recorded = False

        def change(doc: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal recorded
            if beat.ended:  # the attempt ended while this beat waited for the job lock
                return None
            now = now_iso()
            if first:
                recorded = True
                return self._running(doc, now)
            updates: dict[str, Any] = {"heartbeat_at": now}
            current = self._ours(doc)
            if current is not None and self.opened:
                updates["tracker"] = {**current, "last_step": self.tracker.step - 1}
            return updates

        try:
            update_doc(self.job, change)
        finally:
            if self.stall_watch is not None and self.opened:
                self.stall_watch.check(self.tracker)
        # Once written (a failed write is recorded again by the next beat, or by the end; the
        # end writing it again after a beat wrote it is harmless: the same keys).
        self._running_recorded = self._running_recorded or recorded

    def end(
        self, state: str, exit_code: int, error: str | None = None, *, preempted: bool = False
    ) -> dict[str, Any]:
        """Close the run (result files attached, live backends closed, the journal's `finish`)
        and record the attempt's outcome, and the run's unless preempted, in one document
        update. Call it with the preemption signals ignored: a second signal must not cut the
        record short. Returns the document as stored."""
        heartbeat.stop(self._beat)
        stalled = self.stall_watch.reason if self.stall_watch is not None else None
        error = error or stalled
        unwritten = None
        try:
            self._close_run(exit_code, preempted)
        except OSError as exc:  # a full disk: the document below still records the end
            unwritten = exc.strerror or str(exc)
        ended = now_iso()
        wallclock = round(time.monotonic() - self._t0, 3)
        tracker = self.tracker if self.opened else None

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            updates = {} if self._running_recorded else self._running(doc, ended)
            updates.update(
                status=STATUS_OF[state], ended_at=ended, heartbeat_at=ended, wallclock_s=wallclock
            )
            if "peak_rss_mb" in self.used:
                updates["peak_rss_mb"] = self.used["peak_rss_mb"]
            current = updates.get("tracker") or self._ours(doc)
            if current is not None:
                binding = {**current, "state": state, "exit_code": exit_code, "error": error}
                binding["closed"] = True
                if state != PREEMPTED:
                    binding["finished_at"] = binding.get("finished_at") or ended
                if tracker is not None:
                    binding["last_step"] = tracker.step - 1
                    binding["summary"] = strict_json(tracker.summary)
                for name, reason in self.mirrors.errors.items():
                    binding = update_backend(binding, name, error=reason)
                for name, extra in self.mirrors.extras.items():
                    binding = update_backend(binding, name, extra=dict(extra))
                updates["tracker"] = binding
            return updates

        stored = update_doc(self.job, change, base=self._held)
        if unwritten:  # said only once the document is written: else that failure is the news
            warn(self.job, f"the end of its journal was not written ({unwritten})")
        return stored

    def _close_run(self, exit_code: int, preempted: bool) -> None:
        """Attach the declared result files, close the live backends, then the journal's
        `finish` (the commit point: written only once every backend is closed)."""
        tracker = self.tracker
        writer = tracker._journal if tracker is not None else None
        if writer is None:
            return
        for name in self.artifacts:
            try:  # one look at the file: attached when it exists
                tracker._attach(name, os.path.join(self.job.path, name))
            except Exception as exc:  # the run still closes
                warn(self.job, f"result file {name!r} not attached: {exc}")
        self.mirrors.finish(exit_code, preempted=preempted)
        try:
            # Measured last: the wall time and peak memory include closing the backends.
            self.used = self._usage.finish() if self._usage is not None else {}
            if self.stall_watch is not None and self.stall_watch.reason:
                self.used["stalled"] = True
            writer.finish(exit_code, preempted=preempted, attempt=self.number, **self.used)
        finally:
            writer.close()

    def close(self) -> None:
        """Release what the attempt holds open: its read of the document, and the journal a
        refused attempt opened to read its tail (the run's own journal closes with the run)."""
        if self._held is not None:
            self._held.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


__all__ = ["FIRST_RECORD_S", "Attempt", "AttemptEnded", "Binder", "NothingToRun"]
