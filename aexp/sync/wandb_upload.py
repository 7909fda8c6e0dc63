"""Uploading W&B fragments: which fragments go together into which `wandb sync` process.

Fragments of one run are uploaded one at a time in start-time order (folder-name order: the start
second, then W&B's `-N` suffix); a fragment is only attempted once every earlier one is synced.
W&B continues the step axis of a resumed run after the last step the server holds; the lifecycle
logs explicit steps that already continue across attempts, so they arrive as logged (docs/sync.md,
"Fragments and steps").

Different runs go in parallel inside one `wandb sync -n <workers>` process per round (round k
uploads the k-th unsynced fragment of each run; most sweeps need one round), one process per
project/entity pair and at most MAX_PATHS_PER_PROCESS paths per process. One process for many runs
costs what a bare `wandb sync -n <workers>` costs; one process per run would pay Python and
wandb-core start-up for each. Each process inherits the claims of the jobs it uploads
(claims.py), so that it holds them as long as it runs, even if aexp is killed meanwhile.

Before each process starts, `on_start` records its fragments in flight (record.py); a fragment
whose record cannot be written is not uploaded. If a process times out without any fragment
succeeding, the server is taken to be unreachable and the rest of the batch is reported "not
attempted" instead of spending a timeout on each. Ctrl-C (any exception) kills the running process
tree; the fragments that had completed are reported as usual, every other fragment stays in
flight for the next sync to settle, and the exception goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aexp.sync.claims import MAX_RUNS_PER_BATCH
from aexp.sync.wandb_process import Launch, Outcome
from aexp.wandb_offline import FragmentFolder

# Paths per `wandb sync` process: keeps the command line far below ARG_MAX.
MAX_PATHS_PER_PROCESS = MAX_RUNS_PER_BATCH
POLL_SECONDS = 0.05

RunKey = tuple[str, str]  # (job id, run id)
OnDone = Callable[[Outcome], None]
OnStart = Callable[[list[FragmentFolder]], list[FragmentFolder]]


class UploadTarget(Protocol):
    """Where a run goes: its W&B project and entity (None: W&B's default)."""

    @property
    def project(self) -> str | None: ...

    @property
    def entity(self) -> str | None: ...


def upload_rounds(
    todo: dict[RunKey, list[FragmentFolder]],
    runs: Mapping[RunKey, UploadTarget],
    *,
    on_done: OnDone,
    on_start: OnStart,
    **options: Any,
) -> None:
    """Upload round after round: each round the first fragment left of every run in `todo`.

    `on_start(fragments)` records a round's fragments in flight and returns those it could
    record (the others must have been taken out of `todo`); `on_done(outcome)` must take a
    succeeded fragment off the front of its run's list in `todo` and empty the list of a run
    whose fragment failed; `options` are `run_batch`'s (`claims`: {job id: the file descriptor of
    its claim}, inherited by the `wandb sync` processes).
    """
    while any(todo.values()):
        wave = on_start([left[0] for left in todo.values() if left])
        groups: dict[tuple[str | None, str | None], list[FragmentFolder]] = {}
        for frag in wave:
            run = runs[(frag.job_id, frag.run_id)]
            groups.setdefault((run.project, run.entity), []).append(frag)
        for (project, entity), frags in groups.items():
            run_batch(frags, project=project, entity=entity, on_done=on_done, **options)
        if any(left and left[0] in wave for left in todo.values()):  # never expected
            raise RuntimeError("aexp.sync: a fragment was neither synced nor failed")


def run_batch(
    fragments: list[FragmentFolder],
    *,
    workers: int,
    timeout: float,
    project: str | None,
    entity: str | None,
    resync: bool,
    on_done: OnDone,
    claims: Mapping[str, int | None] | None = None,
) -> list[Outcome]:
    """Upload `fragments` (at most one per run) with as few `wandb sync` processes as possible.

    `on_done(outcome)` is called for every final outcome as soon as it is known (a success may
    be reported twice: as soon as its upload closed, and with its process's exit code).
    Returns the final outcomes.
    """
    pending = list(fragments)
    outcomes: list[Outcome] = []
    while pending:
        chunk, pending = pending[:MAX_PATHS_PER_PROCESS], pending[MAX_PATHS_PER_PROCESS:]
        fds = {(claims or {}).get(frag.job_id) for frag in chunk} - {None}
        launch = Launch(
            chunk,
            workers=workers,
            timeout=timeout,
            project=project,
            entity=entity,
            resync=resync,
            pass_fds=sorted(fd for fd in fds if fd is not None),
        )
        try:
            while launch.running():
                for outcome in launch.poll():
                    on_done(outcome)
                time.sleep(POLL_SECONDS)
            for outcome in launch.poll():
                on_done(outcome)
            results = launch.finish()
        except BaseException:
            # Ctrl-C (or a bug): stop W&B, judge what had completed (recorded as usual), leave
            # every other fragment in flight (finish takes back markers it cannot vouch for).
            launch.kill()
            for outcome in launch.finish():
                if outcome.ok:
                    on_done(outcome)
            raise
        again = [o.fragment for o in results if o.requeue]
        done = [o for o in results if not o.requeue]
        if launch.timed_out and not any(o.ok for o in results):
            # Nothing got through and something hung: the server is not answering. Stop here
            # instead of spending a timeout on every remaining run.
            n = len(launch.timed_out)
            for frag in [*again, *pending]:
                done.append(
                    Outcome(
                        frag,
                        ok=False,
                        reason=(
                            f"not attempted: the server did not answer ({n} upload(s) timed out "
                            f"after {timeout:g} s)"
                        ),
                        unanswered=True,
                    )
                )
                done[-1].stderr = done[-1].reason or ""
            again, pending = [], []
            for outcome in done:  # asking the server what arrived would hang as well
                outcome.unanswered = True
        for outcome in done:
            on_done(outcome)
        outcomes.extend(done)
        pending = again + pending
    return outcomes
