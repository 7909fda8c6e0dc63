"""What one sync has to say: its results, what it has in flight, the backends this host cannot
sync to.

`Tally` keeps one SyncResult per W&B fragment, replayed run or unreadable job (the last word on
each wins: a fragment judged in doubt and then settled from the server is reported as settled),
the uploads and replays under way (for the one line an interruption prints), and leaves out of a
sync the backends this host cannot sync to (hosts.backend_blocker), each said once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aexp.sync.plan import WANDB, JobWork
from aexp.sync.result import NOT_ATTEMPTED, SyncResult, job_result, replay_result, result_for
from aexp.wandb_offline.folders import folder_order


class Tally:
    """The results of one sync, and what it has in flight."""

    def __init__(self) -> None:
        self.results: dict[tuple[str, str], SyncResult] = {}
        self.in_flight: set[tuple[str, str]] = set()  # (job id, backend) uploading right now

    def add(self, results: Iterable[SyncResult]) -> None:
        for r in results:
            self.results[(r.path, r.backend)] = r

    def ordered(self) -> list[SyncResult]:
        """By job id; W&B fragments in start-time order first, then replayed backends."""

        def key(r: SyncResult) -> tuple[Any, ...]:
            if r.backend == WANDB:
                return (r.job_id or "", 0, folder_order(Path(r.path)))
            return (r.job_id or "", 1, (r.backend, "", ""))

        return sorted(self.results.values(), key=key)

    def skip_job(self, item: JobWork, reason: str) -> None:
        self.add(result_for(f, ok=True, skipped=reason) for f in item.run_fragments())
        self.add(
            replay_result(name, journal_of(item), item.job_id, item.run_id, ok=True, skipped=reason)
            for name in item.replays
        )

    def fail_wandb(self, item: JobWork, reason: str) -> None:
        """Every fragment of the job's W&B run failed with `reason` (a job-level result when the
        run has none)."""
        frags = [f for f in item.run_fragments() if f.log]
        self.add(result_for(f, ok=False, stderr=reason) for f in frags)
        if not frags:
            self.add(
                [
                    job_result(
                        item.job_id,
                        item.job.path,
                        ok=False,
                        stderr=reason,
                        run_id=item.run_id,
                        backend=WANDB,
                    )
                ]
            )

    def fail_job(self, item: JobWork, reason: str) -> None:
        """The whole job failed with `reason`: its W&B run and each replay due."""
        self.fail_wandb(item, reason)
        self.add(
            replay_result(name, journal_of(item), item.job_id, item.run_id, ok=False, stderr=reason)
            for name in item.replays
        )

    # -- what this host can do ----------------------------------------------------------------
    def host_checks(self, work: list[JobWork]) -> list[JobWork]:
        """Leave out the backends this host cannot sync to: each is said once, and every run
        that needed it gets one failed result `not attempted on this host: <why>`."""
        from aexp.sync.hosts import backend_blocker

        names = {WANDB for item in work if item.wandb} | {n for i in work for n in i.replays}
        blocked = {name: b for name in sorted(names) if (b := backend_blocker(name)) is not None}
        for name, blocker in blocked.items():
            print(f"sync: {name} not attempted on this host: {blocker.reason}", file=sys.stderr)
        if not blocked:
            return work
        kept = []
        for item in work:
            reason = f"{NOT_ATTEMPTED}: "
            if item.wandb and WANDB in blocked:
                item.wandb = False
                self.fail_wandb(item, reason + blocked[WANDB].short)
            for name in [n for n in item.replays if n in blocked]:
                item.replays.remove(name)
                self.add(
                    [
                        replay_result(
                            name,
                            journal_of(item),
                            item.job_id,
                            item.run_id,
                            ok=False,
                            stderr=reason + blocked[name].short,
                        )
                    ]
                )
            if item.busy:
                kept.append(item)
        return kept

    def say_unfinished(self) -> None:
        """After Ctrl-C or SIGTERM: one line saying what did not finish."""
        if self.in_flight:
            runs = len({job for job, _ in self.in_flight})
            names = ", ".join(sorted({backend for _, backend in self.in_flight}))
            print(
                f"interrupted: the uploads of {runs} run(s) ({names}) did not finish; they stay "
                "recorded in flight, and the next sync asks the server what arrived before "
                "sending anything of them again",
                file=sys.stderr,
            )
        else:
            print("interrupted: what had finished is recorded", file=sys.stderr)


def journal_of(item: JobWork) -> Path:
    """The path of the journal of `item`'s run."""
    from aexp.journal import journal_path

    return journal_path(item.job.path, item.run_id)


__all__ = ["Tally", "journal_of"]
