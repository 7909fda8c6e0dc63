"""The W&B uploads of one batch of claimed jobs, from the in-flight record to the verdict.

For each round (wandb_upload.py: the next fragment of every run), each fragment is first recorded
in flight in its job's document (a fragment that cannot be recorded, a full disk, is not
uploaded). Then each outcome of `wandb sync` (wandb_process.py):

- clean (W&B wrote its marker, logged no error for it): recorded synced at once, out of flight;
- not started (W&B's log of a process that ran to its end never named it, or the server did not
  answer others): nothing of it arrived; out of flight, failed, tried again next time;
- anything else (W&B logged an error after its marker, a timeout, an upload cut short by another
  one's timeout, a process that died): in doubt. Once the batch's processes are done, the server
  is asked what it holds of those runs (one question, wandb_settle.py) and each fragment is
  recorded as the server says: synced (W&B's error was wrong, as for a fragment whose
  `environment` record follows its `exit` record), synced in part (the rest follows from the
  journal at the next sync), or not arrived (failed, sent again next time). When the server did
  not answer the uploads themselves, it is not asked; the fragments stay in flight and the next
  sync settles them.

A fragment that failed or is in doubt makes the later fragments of its run wait for the next sync.
Ctrl-C (any exception) leaves every upload whose outcome was not recorded in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aexp.sync.plan import WANDB
from aexp.sync.record import clear_inflight, record_backend, record_fragments, record_inflight
from aexp.sync.result import result_for
from aexp.sync.wandb_process import Outcome
from aexp.sync.wandb_upload import upload_rounds
from aexp.wandb_offline import FragmentFolder
from aexp.wandb_offline.repair import describe

if TYPE_CHECKING:
    from aexp.sync.tally import Tally
    from aexp.sync.wandb_prepare import WandbRun

RunKey = tuple[str, str]  # (job id, run id)


def upload_runs(
    tally: Tally,
    runs: Mapping[RunKey, WandbRun],
    fds: Mapping[str, int | None],
    *,
    workers: int,
    timeout: float,
    resync: bool,
    bar: Any = None,
) -> None:
    """Upload the fragments `runs` have to do (module docstring); results go to `tally`.
    `fds`: {job id: its claim's file descriptor}; `bar`: a progress bar (tqdm) or None."""
    round_ = _Round(tally, runs, timeout=timeout, bar=bar)
    round_.start()
    upload_rounds(
        round_.todo,
        runs,
        on_done=round_.done,
        on_start=round_.record_start,
        workers=workers,
        timeout=timeout,
        resync=resync,
        claims=fds,
    )
    round_.settle_doubts()


class _Round:
    def __init__(
        self, sync: Tally, runs: Mapping[RunKey, WandbRun], *, timeout: float, bar: Any
    ) -> None:
        self.sync, self.runs, self.timeout, self.bar = sync, runs, timeout, bar
        self.todo: dict[RunKey, list[FragmentFolder]] = {k: list(r.todo) for k, r in runs.items()}
        self.urls: dict[RunKey, str] = {}
        self.counted: set[Path] = set()
        self.doubts: dict[RunKey, Outcome] = {}
        self.waiting: set[RunKey] = set()  # runs whose later fragments wait for the next sync
        self.unanswered = False

    def start(self) -> None:
        total = sum(len(left) for left in self.todo.values())
        bar = self.bar
        if bar is not None and total:
            bar.total = (bar.total or 0) + total
            bar.refresh()
        for key, left in self.todo.items():  # nothing (more) to upload: through already
            if not left:
                self.through(key)

    def through(self, key: RunKey) -> None:
        from aexp.sync.record import wandb_url

        run = self.runs[key]
        url = self.urls.get(key) or wandb_url(run.project, run.entity, run.work.run_id)
        record_backend(
            run.work.job,
            run.work.run_id,
            WANDB,
            attempts=run.work.binding.get("attempts"),
            through=run.complete,
            url=url,
        )

    def record_start(self, wave: list[FragmentFolder]) -> list[FragmentFolder]:
        """Record each fragment of the round in flight; those that cannot be are not sent."""
        started = []
        for frag in wave:
            key = (frag.job_id, frag.run_id)
            run = self.runs[key]
            entry = describe(run.views[frag.folder])
            fragments = {frag.folder.name: entry}
            if record_inflight(run.work.job, run.work.run_id, WANDB, fragments=fragments):
                self.sync.in_flight.add((frag.job_id, WANDB))
                started.append(frag)
                continue
            self.sync.add(
                [
                    result_for(
                        frag,
                        ok=False,
                        stderr="not uploaded: the job document could not record the upload "
                        "before it started (see the warning above)",
                    )
                ]
            )
            self.stop_run(key, frag)
        return started

    def stop_run(self, key: RunKey, frag: FragmentFolder) -> int:
        """The later fragments of `frag`'s run wait for the next sync; returns how many."""
        later = [f for f in self.todo[key] if f is not frag]
        if later:
            self.waiting.add(key)
        for other in later:
            self.sync.add(
                [
                    result_for(
                        other,
                        ok=True,
                        skipped=f"waiting: an earlier fragment of run {frag.run_id} did not sync",
                    )
                ]
            )
        self.todo[key] = []
        return len(later)

    def done(self, outcome: Outcome) -> None:
        """Take one fragment's outcome (a success can come twice: as soon as its upload closed,
        then with the process's exit code; only the first one counts)."""
        frag = outcome.fragment
        self.sync.add(
            [
                result_for(
                    frag,
                    ok=outcome.ok,
                    stdout=outcome.stdout,
                    stderr=outcome.stderr,
                    returncode=outcome.returncode,
                    duration=outcome.duration,
                )
            ]
        )
        key = (frag.job_id, frag.run_id)
        if frag.folder in self.counted:
            return
        self.counted.add(frag.folder)
        run = self.runs[key]
        advanced = 1
        self.unanswered = self.unanswered or outcome.unanswered
        if outcome.ok:
            record_fragments(
                run.work.job, run.work.run_id, {frag.folder.name: describe(run.views[frag.folder])}
            )
            if outcome.url:
                self.urls[key] = outcome.url
            left = self.todo[key]
            if left and left[0] is frag:
                left.pop(0)
            if not left:
                self.through(key)
                self.sync.in_flight.discard((frag.job_id, WANDB))
        else:
            if outcome.doubt:
                self.doubts[key] = outcome
            else:  # nothing of it arrived
                clear_inflight(run.work.job, run.work.run_id, WANDB, [frag.folder.name])
                self.sync.in_flight.discard((frag.job_id, WANDB))
            advanced += self.stop_run(key, frag)
        if self.bar is not None:
            self.bar.update(advanced)

    def settle_doubts(self) -> None:
        """Ask the server about the uploads in doubt and record what it says (module
        docstring); when the server did not answer the uploads, leave them in flight."""
        if not self.doubts:
            return
        if self.unanswered:
            for outcome in self.doubts.values():
                self._annotate(
                    outcome,
                    "in doubt: the server did not answer; the next sync asks it what arrived "
                    "before sending anything of this run again",
                )
            return
        from aexp.sync.wandb_settle import NONE, SENT, settle_runs

        keys = list(self.doubts)
        answers = settle_runs(
            [(self.runs[k].work.job, k[1], self._binding(k)) for k in keys],
            timeout=self.timeout,
        )
        for key in keys:
            outcome = self.doubts[key]
            answer = answers[key[0]]
            if isinstance(answer, str):
                self._annotate(
                    outcome,
                    f"in doubt: {answer}; the next sync asks again before sending anything of "
                    "this run again",
                )
                continue
            self.sync.in_flight.discard((key[0], WANDB))
            verdict = next((v for v in answer if v.folder == outcome.fragment.folder.name), None)
            if verdict is not None and verdict.kind == SENT:
                self._annotate(outcome, f"uploaded: {verdict.sentence()} ({outcome.reason})")
                if self.urls.get(key) or outcome.url:
                    self.urls[key] = self.urls.get(key) or outcome.url or ""
                if key not in self.waiting:
                    self.through(key)
            elif verdict is not None and verdict.kind != NONE:
                self._annotate(outcome, f"{verdict.sentence()} (by the next sync)")
            else:
                self._annotate(outcome, "the server holds none of it; it is sent again next time")

    def _binding(self, key: RunKey) -> dict[str, Any]:
        """The binding as stored now (the outcomes of this round are in it)."""
        from aexp.binding import get_binding
        from aexp.jobdoc import read_doc

        run = self.runs[key]
        return get_binding(run.work.job, read_doc(run.work.job, fresh=True)) or run.work.binding

    def _annotate(self, outcome: Outcome, line: str) -> None:
        """The fragment's result, settled: `line` ends its stdout when the server holds it
        (ok), its stderr (the reason) when it does not or cannot say."""
        ok = line.startswith("uploaded: ")
        stdout, stderr = outcome.stdout, outcome.stderr
        if ok:
            stdout = (stdout + "\n" if stdout else "") + line
        else:
            stderr = (stderr + "\n" if stderr else "") + line
        self.sync.add(
            [
                result_for(
                    outcome.fragment,
                    ok=ok,
                    stdout=stdout,
                    stderr=stderr,
                    returncode=outcome.returncode,
                    duration=outcome.duration,
                )
            ]
        )


__all__ = ["upload_runs"]
