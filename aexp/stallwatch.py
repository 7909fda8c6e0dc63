"""Preempting an attempt whose journal stopped progressing (`[workflow] on_stall = preempt`).

A deadlock, a hung collective or a dead data loader leaves the process alive: its heartbeat
thread beats on, so the job is not stale, and without this it would hold its allocation until
the walltime. With `on_stall = preempt` each heartbeat of the attempt asks the watch whether its
journal has logged anything within `aexp.state.stall_bound` (its own pace times PACE_FACTOR, at
least `[workflow] stall_after`). Once it has not:

1. the attempt is marked stalled: the next preemption signal stops it at once, not at its next
   checkpoint (which a stalled experiment never reaches), and its end records `stalled: true`
   and the reason in `error`;
2. the warning signal (`[slurm] warning_signal`) is sent the way SLURM sends it before the time
   limit: inside a SLURM job to its batch shell (`scancel --batch`), whose trap forwards it to
   the operation and requeues the job after the attempt is recorded preempted; elsewhere to this
   process, marked as the attempt's own (`Preempted.own`): the attempt is recorded preempted
   and the pass goes on with the other jobs, as after a failed one (one job's stall never
   stops another). The run resumes from its last checkpoint at the next `run`, as after any
   preemption. A signal from outside (SLURM's, scancel's, Ctrl-C) still ends the pass;
3. if the attempt has still not ended a grace period later (GRACE_MIN_S, or the stall bound if
   longer: the main thread is stuck where no Python signal handler runs, inside a C call), the
   process exits with 128 + signal from the heartbeat thread, ending the pass with it (nothing
   else can stop such a process); the next attempt finds it dead (its SLURM job restarted, or
   its pid gone) and resumes the run.

In a `--parallel` bundle the batch shell forwards the signal to every operation: the others are
preempted too and resume after the requeue. `[workflow] on_stall = report` (the default) leaves
the attempt alone; `status` and `aexp runs` show it `stalled` from the journal either way.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from aexp.state import PACE_FACTOR, stall_bound

# Seconds a stalled attempt may take, at least, to be recorded after its preemption signal
# before its process is ended from the heartbeat thread (recording takes about a second).
GRACE_MIN_S = 15.0


class StallWatch:
    """The stall watch of one attempt (module docstring). `floor`: `[workflow] stall_after`;
    `signal_name`: the signal that preempts it (`[slurm] warning_signal`, e.g. "USR1")."""

    def __init__(self, job_id: str, floor: float, signal_name: str) -> None:
        self.job_id = job_id
        self.floor = floor
        self.signum = int(getattr(signal, f"SIG{signal_name}"))
        self.reason: str | None = None  # why it was preempted, once it was
        self._deadline = 0.0
        self._grace = GRACE_MIN_S

    def check(self, tracker: Any) -> None:
        """Called by each heartbeat of the attempt whose `tracker` logs to the journal."""
        writer = tracker._journal
        if writer is None or writer.opened_at is None:
            return
        now = time.monotonic()
        if self.reason is not None:
            if now > self._deadline and not tracker._closing:
                self._say(
                    f"not stopped {self._grace:.0f} s after SIG{self._name}; ending its process"
                )
                os._exit(128 + self.signum)
            return
        idle = now - (writer.progress_at or writer.opened_at)
        bound = stall_bound(writer.pace_s, self.floor)
        if idle <= bound:
            return
        self.reason = (
            f"stalled: its journal logged nothing for {idle:.0f} s (the bound: {bound:.0f} s, "
            f"{PACE_FACTOR:g} x its pace and at least [workflow] stall_after)"
        )
        tracker._stalled = True
        self._grace = max(GRACE_MIN_S, bound)
        self._deadline = now + self._grace
        self._say(f"{self.reason}; preempting it ([workflow] on_stall = preempt)")
        self._preempt(tracker)

    @property
    def _name(self) -> str:
        return signal.Signals(self.signum).name.removeprefix("SIG")

    def _say(self, text: str) -> None:
        print(f"aexp: job {self.job_id}: {text}", file=sys.stderr, flush=True)

    def _preempt(self, tracker: Any) -> None:
        slurm_job = os.environ.get("SLURM_JOB_ID")
        if slurm_job:
            from aexp.slurm.commands import SlurmCommandError, signal_batch_shell

            try:
                signal_batch_shell(slurm_job, self._name)
                return
            except SlurmCommandError as exc:  # no scancel on this node: this process alone
                self._say(f"could not signal the batch shell ({exc}); signalling itself")
        # Marked as the attempt's own: it preempts this attempt alone, and the pass goes on.
        tracker._own_signal = self.signum
        os.kill(os.getpid(), self.signum)


__all__ = ["GRACE_MIN_S", "StallWatch"]
