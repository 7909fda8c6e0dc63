"""What an experiment gets: `Tracker`, to log metrics and artifacts, checkpoint and resume.

    def experiment(job, tracker):
        state = tracker.load_checkpoint() or {"epoch": 0}
        for epoch in range(state["epoch"], 10):
            tracker.log({"epoch": epoch, "loss": train()})
            tracker.checkpoint({"epoch": epoch + 1})

Every row goes to the run's journal first (flushed before `log` returns), then to the live
backends (aexp.mirrors). The step axis is the run's, continued across attempts.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from aexp.checkpoint import Checkpoint, CheckpointDamaged, read_checkpoint, write_checkpoint
from aexp.errors import TrackerUsageError
from aexp.journal import JournalWriter
from aexp.mirrors import LiveMirrors
from aexp.trackers import clean_metrics


class Preempted(SystemExit):
    """Raised inside the experiment when the attempt was signalled; exits with 128 + signal.

    `own`: the attempt's own stall watch sent the signal (aexp.stallwatch), so the preemption is
    this attempt's alone and the pass goes on with the other jobs; otherwise it came from
    outside (SLURM, scancel, kill, Ctrl-C) and stops the whole process.
    """

    def __init__(self, signum: int, *, own: bool = False) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.own = own


@dataclass
class Tracker:
    """The experiment's handle on its run during one execution attempt.

    `step` is the step the next `log` records at: it continues across attempts, so a resumed
    run has one continuous step axis. Log your own counter (epoch, iteration) as a metric, or
    pass it as `step=`. `attempt` is the attempt's number (1, 2, ...); `summary` the latest value
    of every metric.
    """

    job: Any
    run_id: str | None
    step: int = 0
    attempt: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    _journal: JournalWriter | None = None
    _mirrors: LiveMirrors | None = None
    _preempt_signal: int | None = None
    _checkpoints_used: bool = False
    _checkpoint_seq: int | None = None  # of the newest stored checkpoint (-1: none), once known
    _closing: bool = False  # the experiment has returned or raised: signals no longer stop it
    _stalled: bool = False  # its journal stopped progressing: a signal stops it at once
    _own_signal: int | None = None  # the signal its own stall watch is sending to this process
    _preempt_own: bool = False  # the preemption under way is that one (Preempted.own)

    def log(self, metrics: Mapping[str, Any], *, step: int | None = None) -> None:
        """Record one row of metrics at `step` (default: the next step).

        Values: numbers, strings, booleans and None (numpy scalars converted; NaN and infinity
        kept). A `step` behind the run's next step is work re-done after a checkpoint (an attempt
        killed after its last checkpoint does it again): the row is kept in the journal marked
        `redo` and not sent to the trackers, which keep the row first logged at that step. The
        step axis never goes back. Raises TrackerUsageError for a value or step it cannot record.
        """
        row = clean_metrics(metrics)
        if step is None:
            step = self.step
        elif type(step) is not int or step < 0:
            raise TrackerUsageError(f"step must be a whole number of at least 0, not {step!r}.")
        elif step < self.step:
            if self._journal is not None:
                self._journal.log(row, step, redo=True)
            return
        if self._journal is not None:
            self._journal.log(row, step)
        if self._mirrors is not None:
            self._mirrors.log(row, step)
        self.summary.update(row)
        self.step = step + 1

    def log_artifact(self, name: str, path: str | os.PathLike) -> None:
        """Attach a file or directory (a relative path is inside the job) to the run.

        Raises TrackerUsageError when it does not exist (nothing is recorded).
        """
        full = os.path.join(self.job.path, path)  # a string: no Path on every attempt's end
        if not self._attach(name, full):
            raise TrackerUsageError(f"artifact {name!r}: {full} does not exist.")

    def _attach(self, name: str, full: str) -> bool:
        """`log_artifact` of the path `full`; False (nothing recorded) when it does not exist.
        One `lstat` for a file that is not a link (its size, and whether it is one)."""
        try:
            st = os.lstat(full)
            link = stat.S_ISLNK(st.st_mode)
            if link:
                st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if self._journal is not None:
            size = _size(Path(full)) if stat.S_ISDIR(st.st_mode) else st.st_size
            self._journal.log_artifact(name, full, size, job_path=self.job.path, link=link)
        if self._mirrors is not None:
            self._mirrors.log_artifact(name, full)
        return True

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
        if self._journal is not None:
            self._journal.checkpoint(seq=seq, last_step=self.step - 1 if self.step else None)
        if self._preempt_signal is not None:
            raise Preempted(self._preempt_signal, own=self._preempt_own)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The state saved by the last `checkpoint` of this job, or None.

        If no checkpoint is intact, that is reported on stderr and treated as absent: the
        experiment starts over rather than failing on every attempt. An experiment that loads
        checkpoints saves them: from here on a preemption signal waits for its next
        `checkpoint` (in the first epoch too), as it does once `checkpoint` has been called.
        """
        self._checkpoints_used = True
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
        if self._closing:  # the attempt is being recorded: a second signal must not cut it short
            return
        first = self._preempt_signal is None
        self._preempt_signal = signum
        # The stall watch's own signal is consumed by the first delivery of that signal; any
        # other (or a second) one came from outside and stops the process.
        self._preempt_own = first and signum == self._own_signal
        self._own_signal = None
        # A stalled experiment never reaches its next checkpoint (aexp.stallwatch).
        if not self._checkpoints_used or not first or self._stalled:
            raise Preempted(signum, own=self._preempt_own)


def _size(path: Path) -> int:
    """Bytes of the files under the directory `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


__all__ = ["Preempted", "Tracker"]
