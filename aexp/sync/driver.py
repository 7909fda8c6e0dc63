"""sync_offline_runs: one sync of a project, from the job documents to the recorded runs.

It plans from the job documents (plan.py) and asks once per backend whether this host can sync to
it (hosts.backend_blocker: a backend that cannot is said once and not attempted, run by run).
Then it works through the jobs in batches (at most claims.batch_size() jobs each, below the
file-descriptor limit). For each batch it takes every job's claim (a job claimed elsewhere is
skipped with one line) and reads the job again under the claim; it settles the W&B uploads that
an earlier sync left in flight, from the server's own account (wandb_settle.py, one question for
the whole batch); it gets each W&B run ready from the journal's point of view (wandb_prepare.py:
mend, repair, sort), replays the run into the backends fed by replay (replay.py), uploads the W&B
fragments round after round (wandb_round.py, wandb_upload.py; the `wandb sync` processes inherit
the claims), records every fragment in flight before its upload and synced the moment it is
judged uploaded, and each backend and the binding once they are through (record.py). One job's
failure (a fragment W&B cannot read, a repair W&B refuses, a backend that is down, a bug in its
preparation) never stops another job's sync.

Ctrl-C kills the running `wandb sync` process tree; fragments that had completed are judged and
recorded, every other upload stays recorded in flight for the next sync to settle, one line says
so, then KeyboardInterrupt is re-raised. SIGTERM and SIGHUP get the same, then SystemExit(128 +
signal) (interrupts.py).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from collections.abc import Collection, Iterable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from aexp.binding import get_binding
from aexp.errors import BindingError, JobBusyError, TrackerInitError
from aexp.jobdoc import read_doc
from aexp.jobs import find_project_root
from aexp.schema import FAILED, FINISHED
from aexp.settings import Settings, load_settings
from aexp.sync.plan import WANDB, JobWork, corrupt_reason, plan_jobs, settle
from aexp.sync.result import (
    STILL_EXECUTING,
    SyncResult,
    replay_result,
    result_for,
)
from aexp.sync.rules import still_executing
from aexp.sync.tally import Tally, journal_of
from aexp.wandb_offline.folders import job_fragment_folders

if TYPE_CHECKING:
    from aexp.sync.wandb_prepare import WandbRun

# (An idle pass, everything synced, needs the plan only: the modules that mend, repair, replay,
# upload and record are imported when a batch has work.)
RunKey = tuple[str, str]  # (job id, run id)


def sync_offline_runs(
    root: str | os.PathLike = ".",
    *,
    dry_run: bool = False,
    job_ids: Iterable[str] | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    resync: bool = False,
    progress: bool = False,
    settings: Settings | None = None,
    backends: Collection[str] | None = None,
    verbose: bool = False,
) -> list[SyncResult]:
    """Bring every backend of the project's runs that needs a login node up to the journal:
    upload W&B offline runs (mended and completed from the journal first), replay runs into
    backends fed by replay. One result per W&B fragment, per replayed run, and per job whose
    document cannot be read (`backend` "") or backend of a run this host cannot sync to.

    dry_run   report what would be done; starts no process, contacts nothing, writes nothing
    job_ids   only these jobs (full ids); default every job
    workers   runs uploaded in parallel (default `[sync] workers` of signac.rc)
    timeout   seconds one run's upload or replay may take, whatever the backend (default
              `[sync] timeout`)
    resync    upload (and replay) again what the job documents record as synced
    progress  a progress bar on stderr
    settings  the project's Settings (default: read from its signac.rc)
    backends  only these backends (default: every backend of each run)
    verbose   let the backends' SDKs log to stderr (default: they are kept quiet)

    Never raises for a failed upload or replay: the result says `ok=False` with the reason as
    the last line of `stderr`, and the next call retries. Notes (a fragment mended, rows written
    from the journal, an upload settled from the server, a job claimed by another process) go to
    stderr, one line each. Raises ProjectNotFoundError outside a project, TrackerInitError when a
    W&B run needs syncing and the wandb package is not installed, KeyboardInterrupt after
    cleaning up (see the module docstring), and SystemExit(128 + signal) after SIGTERM or SIGHUP.
    """
    project_root = find_project_root(root)
    if settings is None:
        settings = load_settings(project_root)
    timeout = float(timeout or settings.sync_timeout)
    settings = dataclasses.replace(settings, sync_timeout=timeout)  # adapters take it from here
    sync = _Sync(
        workers=int(workers or settings.sync_workers),
        timeout=timeout,
        resync=resync,
        dry_run=dry_run,
        settings=settings,
        root=project_root,
    )
    work, skipped = plan_jobs(
        os.path.join(project_root, "workspace"),
        job_ids,
        stale_after=settings.stale_after,
        resync=resync,
        only=backends,
    )
    sync.add(skipped)
    if dry_run or not work:  # an idle pass stops here, having read each job document once
        for item in work:
            sync.dry(item)
        return sync.ordered()
    work = sync.host_checks(work)
    if any(item.wandb for item in work) and importlib.util.find_spec("wandb") is None:
        from aexp.sync.hosts import INSTALL_HINT

        raise TrackerInitError(
            f"uploading W&B offline runs needs the wandb package; {INSTALL_HINT}."
        )
    sync.bar = _progress_bar() if progress and work else None
    from aexp.sync.interrupts import terminate_cleanly
    from aexp.sync.quiet import quiet_sdks

    try:
        with quiet_sdks(verbose), terminate_cleanly():
            for batch in _chunks(work, _batch_size()):
                sync.batch(batch)
    except (KeyboardInterrupt, SystemExit):
        sync.say_unfinished()
        raise
    finally:
        if sync.bar is not None:
            sync.bar.close()
    return sync.ordered()


def _batch_size() -> int:
    from aexp.sync.claims import batch_size

    return batch_size()


def _chunks(items: list[JobWork], size: int) -> Iterator[list[JobWork]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def say(job_id: str, run_id: str, line: str) -> None:
    """One note on stderr about a job's run."""
    print(f"note: job {job_id} run {run_id}: {line}", file=sys.stderr)


class _Sync(Tally):
    """One sync: its options and progress bar, and its results (Tally)."""

    def __init__(
        self,
        *,
        workers: int,
        timeout: float,
        resync: bool,
        dry_run: bool,
        settings: Settings,
        root: str,
    ) -> None:
        self.workers, self.timeout, self.resync = workers, timeout, resync
        self.dry_run, self.stale_after = dry_run, settings.stale_after
        self.settings, self.root = settings, root
        self.bar: Any = None
        super().__init__()
        self.unresponsive: set[str] = set()  # replayed backends whose server ran out of time

    # -- a dry run ----------------------------------------------------------------------------
    def dry(self, item: JobWork) -> None:
        from aexp.sync.replay import replay_backend
        from aexp.sync.wandb_prepare import load_journal, prepare_wandb, stderr_say

        if item.wandb:
            run, results = prepare_wandb(
                item, resync=self.resync, dry_run=True, say=stderr_say(item.job_id, item.run_id)
            )
            self.add(results)
            self.add(result_for(f, ok=True, stdout="dry run: would sync") for f in run.todo)
        if item.replays:
            journal = load_journal(item)
            self.add(
                replay_backend(
                    item, name, journal, dry_run=True, settings=self.settings, root=self.root
                )
                for name in item.replays
            )

    # -- a batch of jobs, under their claims --------------------------------------------------
    def batch(self, batch: list[JobWork]) -> None:
        from aexp.sync.claims import busy_reason, take
        from aexp.sync.wandb_round import upload_runs

        with ExitStack() as claims:
            fds: dict[str, int | None] = {}
            items: list[JobWork] = []
            for planned in batch:
                try:
                    fds[planned.job_id] = take(claims, planned.job)
                except JobBusyError as exc:
                    done = planned.binding["state"] in (FINISHED, FAILED)
                    reason = busy_reason(planned.job, exc, uploading=done)
                    say(planned.job_id, planned.run_id, f"skipped, {reason}")
                    self.skip_job(planned, reason)
                    continue
                except OSError as exc:  # a read-only job directory: this job only
                    self.fail_job(planned, f"cannot take the job's claim: {exc}")
                    continue
                item = self.reread(planned)
                if item is not None:
                    items.append(item)
            items = self.settle_pending(items)
            runs: dict[RunKey, WandbRun] = {}
            for item in items:
                run = self.prepare(item)
                if run is not None:
                    runs[(item.job_id, item.run_id)] = run
            upload_runs(
                self,
                runs,
                fds,
                workers=self.workers,
                timeout=self.timeout,
                resync=self.resync,
                bar=self.bar,
            )

    def reread(self, planned: JobWork) -> JobWork | None:
        """The job as its document says now that its claim is held (None: nothing to do)."""
        try:
            doc = read_doc(planned.job, fresh=True)
            binding = get_binding(planned.job, doc)
        except BindingError as exc:
            self.fail_job(planned, corrupt_reason(exc))
            return None
        except OSError as exc:
            self.fail_job(planned, f"cannot read the job document: {exc}")
            return None
        if binding is None or binding["run_id"] != planned.run_id:
            self.skip_job(planned, "the job was bound to another run meanwhile; left alone")
            return None
        if still_executing(planned.job, doc, self.stale_after):
            self.skip_job(planned, STILL_EXECUTING)
            return None
        fragments = job_fragment_folders(planned.job.path, planned.job_id)
        only = [WANDB] * planned.wandb + planned.replays
        item, results = settle(planned.job, binding, fragments, self.resync, only)
        if planned.wandb:  # else its fragments have their results (plan, host checks) already
            self.add(results)
        return item if item.busy else None

    def settle_pending(self, items: list[JobWork]) -> list[JobWork]:
        """Settle the W&B uploads earlier syncs left in flight, from the server's account (one
        question for the whole batch), before anything of those runs is prepared or sent."""
        from aexp.sync.record import clear_inflight
        from aexp.sync.wandb_settle import inflight_fragments, settle_runs

        pending = [i for i in items if i.wandb and inflight_fragments(i.binding)]
        if not pending:
            return items
        if self.resync:  # everything is sent again anyway: nothing to ask
            for item in pending:
                clear_inflight(item.job, item.run_id, WANDB)
        else:
            answers = settle_runs(
                [(i.job, i.run_id, i.binding) for i in pending], timeout=self.timeout
            )
            for item in pending:
                answer = answers[item.job_id]
                if isinstance(answer, str):
                    self.fail_wandb(
                        item,
                        f"in doubt: an earlier upload of this run was cut short, and {answer}; "
                        "nothing of it is sent until the server says what arrived (the next "
                        "sync asks again)",
                    )
                    item.wandb = False
                    continue
                for verdict in answer:
                    say(
                        item.job_id,
                        item.run_id,
                        f"{verdict.folder}: its upload was cut short by an earlier sync; "
                        f"{verdict.sentence()}",
                    )
        asked = {id(item) for item in pending}
        settled = []
        for item in items:
            if id(item) in asked and item.wandb:
                again = self.reread(item)
                if again is not None:
                    settled.append(again)
            elif item.busy:
                settled.append(item)
        return settled

    def prepare(self, item: JobWork) -> WandbRun | None:
        """Everything but the W&B upload, for one claimed job: its W&B run made ready, its
        replays done, its binding finalized. A failure stays with this job (one result line)."""
        from aexp.sync.record import finalize_job
        from aexp.sync.wandb_prepare import load_journal, prepare_wandb, stderr_say

        run = None
        try:
            if item.wandb:
                say_ = stderr_say(item.job_id, item.run_id)
                run, results = prepare_wandb(item, resync=self.resync, dry_run=False, say=say_)
                self.add(results)
            if item.replays:
                journal = load_journal(item)
                for name in item.replays:
                    self.add([self.replay(item, name, journal)])
            if item.finalize:
                finalize_job(item.job, item.run_id)
        except Exception as exc:  # one job's damage never fails another job's sync
            reason = " ".join(str(exc).split())[:400] or type(exc).__name__
            self.fail_wandb(item, f"could not be prepared for upload: {reason}")
            return None
        return run

    def replay(self, item: JobWork, name: str, journal: Any) -> SyncResult:
        """Replay one run into backend `name`, unless its server already let a replay of this
        pass run out of time: then the rest are not attempted (a hung server costs one
        timeout, not one per run)."""
        from aexp.sync.replay import TIMED_OUT, replay_backend

        if name in self.unresponsive:
            return replay_result(
                name,
                journal_of(item),
                item.job_id,
                item.run_id,
                ok=False,
                stderr=f"not attempted: the {name} server did not answer (a replay took longer "
                f"than the timeout, {self.timeout:g} s)",
            )
        self.in_flight.add((item.job_id, name))
        result = replay_backend(
            item,
            name,
            journal,
            dry_run=False,
            settings=self.settings,
            root=self.root,
            timeout=self.timeout,
            resync=self.resync,
        )
        self.in_flight.discard((item.job_id, name))
        if not result.ok and TIMED_OUT in result.stderr:
            self.unresponsive.add(name)
        return result


def _progress_bar() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=0, desc="sync", unit="run", file=sys.stderr, leave=False)


__all__ = ["sync_offline_runs"]
