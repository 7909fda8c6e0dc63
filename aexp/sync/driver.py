"""sync_offline_runs: one sync of a project, from the job documents to the recorded runs.

It plans from the job documents (plan.py), then works through the jobs in batches (at most
claims.batch_size() jobs each, below the file-descriptor limit). For each batch it takes every
job's claim (a job claimed elsewhere is skipped with one line), reads the job again under the
claim, gets its W&B run ready from the journal's point of view (wandb_prepare.py: mend, repair,
sort), replays the run into the backends fed by replay (replay.py), uploads the W&B fragments
round after round (wandb_upload.py; the `wandb sync` processes inherit the claims) and records
every fragment the moment it is judged uploaded, and each backend and the binding once they are
through (record.py). A fragment that failed makes the later fragments of its run wait for the
next sync; one job's failure (a fragment W&B cannot read, a repair W&B refuses, a backend that is
down) never stops another job's sync.

Ctrl-C kills the running `wandb sync` process tree; fragments that had completed are judged and
recorded, every other fragment is left unsynced, then KeyboardInterrupt is re-raised. SIGTERM and
SIGHUP get the same cleanup, then SystemExit(128 + signal) (interrupts.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aexp.binding import get_binding
from aexp.errors import BindingError, JobBusyError, TrackerInitError
from aexp.jobdoc import read_doc
from aexp.jobs import find_project_root
from aexp.schema import FAILED, FINISHED, RUNNING
from aexp.settings import Settings, load_settings
from aexp.sync.plan import WANDB, JobWork, plan_jobs, settle, stale
from aexp.sync.result import STILL_EXECUTING, SyncResult, replay_result, result_for
from aexp.wandb_offline.folders import folder_order, job_fragment_folders

if TYPE_CHECKING:
    from aexp.sync.wandb_prepare import WandbRun
    from aexp.sync.wandb_process import Outcome

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
) -> list[SyncResult]:
    """Bring every backend of the project's runs that needs a login node up to the journal:
    upload W&B offline runs (mended and completed from the journal first), replay runs into
    backends fed by replay. One result per W&B fragment and per replayed run.

    dry_run   report what would be done; starts no process, contacts nothing, writes nothing
    job_ids   only these jobs (full ids); default every job
    workers   runs uploaded in parallel (default `[sync] workers` of signac.rc)
    timeout   seconds one fragment's upload may take (default `[sync] timeout`)
    resync    upload (and replay) again what the job documents record as synced
    progress  a progress bar on stderr
    settings  the project's Settings (default: read from its signac.rc)

    Never raises for a failed upload or replay: the result says `ok=False` with the reason as
    the last line of `stderr`, and the next call retries. Notes (a fragment mended, rows written
    from the journal, a job claimed by another process) go to stderr, one line each. Raises
    ProjectNotFoundError outside a project, TrackerInitError when a W&B run needs syncing and the
    wandb package is not installed, KeyboardInterrupt after cleaning up (see the module
    docstring), and SystemExit(128 + signal) after SIGTERM or SIGHUP.
    """
    project_root = find_project_root(root)
    if settings is None:
        settings = load_settings(project_root)
    sync = _Sync(
        workers=int(workers or settings.sync_workers),
        timeout=float(timeout or settings.sync_timeout),
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
    )
    sync.add(skipped)
    if dry_run or not work:  # an idle pass stops here, having read each job document once
        for item in work:
            sync.dry(item)
        return sync.ordered()
    if any(item.wandb for item in work) and importlib.util.find_spec("wandb") is None:
        from aexp.sync.hosts import INSTALL_HINT

        raise TrackerInitError(
            f"uploading W&B offline runs needs the wandb package; {INSTALL_HINT}."
        )
    sync.bar = _progress_bar() if progress and work else None
    from aexp.sync.interrupts import terminate_cleanly

    try:
        with terminate_cleanly():
            for batch in _chunks(work, _batch_size()):
                sync.batch(batch)
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


class _Sync:
    """The state of one sync: its options, its results, its progress bar."""

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
        self.results: dict[tuple[str, str], SyncResult] = {}
        self.bar: Any = None

    # -- results ------------------------------------------------------------------------------
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

    def _skip_job(self, item: JobWork, reason: str) -> None:
        self.add(result_for(f, ok=True, skipped=reason) for f in item.run_fragments())
        self.add(
            replay_result(name, _journal(item), item.job_id, item.run_id, ok=True, skipped=reason)
            for name in item.replays
        )

    def _fail_job(self, item: JobWork, reason: str) -> None:
        self.add(result_for(f, ok=False, stderr=reason) for f in item.run_fragments() if f.log)

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

        with ExitStack() as claims:
            fds: dict[str, int | None] = {}
            runs: dict[RunKey, WandbRun] = {}
            for planned in batch:
                try:
                    fds[planned.job_id] = take(claims, planned.job)
                except JobBusyError as exc:
                    done = planned.binding["state"] in (FINISHED, FAILED)
                    reason = busy_reason(planned.job, exc, uploading=done)
                    print(
                        f"note: job {planned.job_id} run {planned.run_id}: skipped, {reason}",
                        file=sys.stderr,
                    )
                    self._skip_job(planned, reason)
                    continue
                except OSError as exc:  # a read-only job directory: this job only
                    self._fail_job(planned, f"cannot take the job's claim: {exc}")
                    continue
                try:
                    item = self._reread(planned)
                except OSError as exc:
                    self._fail_job(planned, f"cannot read the job document: {exc}")
                    continue
                if item is None:
                    continue
                run = self._prepare(item)
                if run is not None:
                    runs[(item.job_id, item.run_id)] = run
            self._upload(runs, fds)

    def _reread(self, planned: JobWork) -> JobWork | None:
        """The job as its document says now that its claim is held (None: nothing to do)."""
        try:
            doc = read_doc(planned.job, fresh=True)
            binding = get_binding(planned.job, doc)
        except BindingError as exc:
            self._skip_job(planned, f"job document unreadable: {exc}")
            return None
        if binding is None or binding["run_id"] != planned.run_id:
            self._skip_job(planned, "the job was bound to another run meanwhile; left alone")
            return None
        if binding["state"] == RUNNING and not stale(doc, self.stale_after):
            self._skip_job(planned, STILL_EXECUTING)
            return None
        fragments = job_fragment_folders(planned.job.path, planned.job_id)
        item, results = settle(planned.job, binding, fragments, self.resync)
        self.add(results)
        return item

    def _prepare(self, item: JobWork) -> WandbRun | None:
        """Everything but the upload, for one claimed job: its W&B run made ready, its replays
        done, its binding finalized. A failure stays with this job (one result line)."""
        from aexp.sync.record import finalize_job
        from aexp.sync.replay import replay_backend
        from aexp.sync.wandb_prepare import load_journal, prepare_wandb, stderr_say

        run = None
        try:
            if item.wandb:
                say = stderr_say(item.job_id, item.run_id)
                run, results = prepare_wandb(item, resync=self.resync, dry_run=False, say=say)
                self.add(results)
            if item.replays:
                journal = load_journal(item)
                for name in item.replays:
                    self.add(
                        [
                            replay_backend(
                                item,
                                name,
                                journal,
                                dry_run=False,
                                settings=self.settings,
                                root=self.root,
                            )
                        ]
                    )
            if item.finalize:
                finalize_job(item.job, item.run_id)
        except Exception as exc:  # one job's damage never fails another job's sync
            reason = " ".join(str(exc).split())[:400] or type(exc).__name__
            self._fail_job(item, f"could not be prepared for upload: {reason}")
            return None
        return run

    # -- the upload ---------------------------------------------------------------------------
    def _upload(self, runs: dict[RunKey, WandbRun], fds: dict[str, int | None]) -> None:
        from aexp.sync.record import record_backend, record_fragments, wandb_url
        from aexp.sync.wandb_upload import upload_rounds
        from aexp.wandb_offline.repair import describe

        todo = {key: list(run.todo) for key, run in runs.items()}
        urls: dict[RunKey, str] = {}
        counted: set[Path] = set()
        total = sum(len(left) for left in todo.values())
        if self.bar is not None and total:
            self.bar.total = (self.bar.total or 0) + total
            self.bar.refresh()

        def through(key: RunKey) -> None:
            run = runs[key]
            url = urls.get(key) or wandb_url(run.project, run.entity, run.work.run_id)
            record_backend(
                run.work.job,
                run.work.run_id,
                WANDB,
                attempts=run.work.binding.get("attempts"),
                through=run.complete,
                url=url,
            )

        def done(outcome: Outcome) -> None:
            """Take one fragment's outcome (a success can come twice: as soon as its upload
            closed, then with the process's exit code; only the first one counts)."""
            frag = outcome.fragment
            self.add(
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
            if frag.folder in counted:
                return
            counted.add(frag.folder)
            advanced = 1
            if outcome.ok:
                run = runs[key]
                entry = describe(run.views[frag.folder])
                record_fragments(run.work.job, run.work.run_id, {frag.folder.name: entry})
                if outcome.url:
                    urls[key] = outcome.url
                left = todo[key]
                if left and left[0] is frag:
                    left.pop(0)
                if not left:
                    through(key)
            else:
                for later in todo[key][1:]:
                    self.add(
                        [
                            result_for(
                                later,
                                ok=True,
                                skipped=f"waiting: an earlier fragment of run {frag.run_id} "
                                "did not sync",
                            )
                        ]
                    )
                    advanced += 1
                todo[key] = []
            if self.bar is not None:
                self.bar.update(advanced)

        for key, left in todo.items():  # nothing (more) to upload: through already
            if not left:
                through(key)
        upload_rounds(
            todo,
            runs,
            on_done=done,
            workers=self.workers,
            timeout=self.timeout,
            resync=self.resync,
            claims=fds,
        )


def _journal(item: JobWork) -> Path:
    from aexp.journal import journal_path

    return journal_path(item.job.path, item.run_id)


def _progress_bar() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=0, desc="sync", unit="run", file=sys.stderr, leave=False)
