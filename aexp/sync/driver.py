"""sync_offline_runs: one sync of a project, from the plan to the recorded runs.

It plans (plan.py), uploads round after round (wandb_upload.py), takes each fragment's outcome as
soon as it is known, records a run in its job document the moment its last fragment is through
(record.py) and draws the progress bar. A fragment that failed makes the later fragments of its
run wait for the next sync. Ctrl-C kills the running `wandb sync` process tree; fragments that had
completed are judged and recorded, every other fragment is left unsynced (no marker), then
KeyboardInterrupt is re-raised. SIGTERM and SIGHUP get the same cleanup, then SystemExit(128 +
signal) (interrupts.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aexp.binding import find_project_root
from aexp.errors import TrackerInitError
from aexp.settings import Settings, load_settings
from aexp.sync.hosts import INSTALL_HINT
from aexp.sync.interrupts import terminate_cleanly
from aexp.sync.plan import Run, RunKey, plan_sync
from aexp.sync.record import record_run
from aexp.sync.result import SyncResult, result_for
from aexp.sync.wandb_process import Outcome
from aexp.sync.wandb_upload import upload_rounds


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
    """Upload the W&B offline runs of the project at or above `root`; one result per fragment.

    dry_run   report what would be uploaded; starts no process, contacts nothing, writes nothing
    job_ids   only these jobs (full ids); default every job with offline runs
    workers   runs uploaded in parallel (default `[sync] workers` of signac.rc)
    timeout   seconds one fragment's upload may take (default `[sync] timeout`)
    resync    upload fragments that carry W&B's synced marker again
    progress  a progress bar on stderr
    settings  the project's Settings (default: read from its signac.rc)

    Never raises for a failed upload: the result says `ok=False` with the reason as the last line
    of `stderr`, the fragment stays unsynced and is retried by the next call. Raises
    ProjectNotFoundError outside a project, TrackerInitError when there is something to upload and
    the wandb package is not installed, KeyboardInterrupt after cleaning up (see the module
    docstring), and SystemExit(128 + signal) after SIGTERM or SIGHUP.
    """
    project_root = find_project_root(root)
    if settings is None:
        settings = load_settings(project_root)
    workers = int(workers or settings.sync_workers)
    timeout = float(timeout or settings.sync_timeout)
    plan = plan_sync(
        os.path.join(project_root, "workspace"),
        job_ids,
        stale_after=settings.stale_after,
        resync=resync,
    )
    results, todo = plan.results, plan.todo

    if dry_run:
        for left in todo.values():
            for frag in left:
                results[frag.folder] = result_for(frag, ok=True, stdout="dry run: would sync")
        return plan.ordered_results()

    total = sum(len(left) for left in todo.values())
    if total and importlib.util.find_spec("wandb") is None:
        raise TrackerInitError(
            f"uploading W&B offline runs needs the wandb package; {INSTALL_HINT}."
        )
    bar = _progress_bar(total) if progress and total else None
    uploaded: dict[RunKey, bool] = {}  # run -> something new got uploaded
    urls: dict[RunKey, str] = {}
    counted: set[Path] = set()

    def finish_run(run: Run) -> None:
        key = (run.job_id, run.run_id)
        record_run(
            plan.job_dir(run.job_id), run, uploaded=uploaded.get(key, False), url=urls.get(key)
        )

    def done(outcome: Outcome) -> None:
        """Take one fragment's outcome (a success can come twice: as soon as its upload closed,
        then with the process's exit code; only the first one counts and records)."""
        frag = outcome.fragment
        advanced = 1
        results[frag.folder] = result_for(
            frag,
            ok=outcome.ok,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            returncode=outcome.returncode,
            duration=outcome.duration,
        )
        key = (frag.job_id, frag.run_id)
        if frag.folder in counted:
            return
        counted.add(frag.folder)
        if outcome.ok:
            uploaded[key] = True
            if outcome.url:
                urls[key] = outcome.url
            left = todo[key]
            if left and left[0] is frag:
                left.pop(0)
            if not left:
                finish_run(plan.runs[key])
        else:
            for later in todo[key][1:]:
                results[later.folder] = result_for(
                    later,
                    ok=True,
                    skipped=f"waiting: an earlier fragment of run {frag.run_id} did not sync",
                )
                advanced += 1
            todo[key] = []
        if bar is not None:
            bar.update(advanced)

    # Runs already fully synced (by an earlier call, or a bare `wandb sync`) but not recorded.
    for key, left in todo.items():
        run = plan.runs[key]
        if not left and run.binding is not None and not run.binding.get("synced_at"):
            finish_run(run)

    try:
        with terminate_cleanly():
            upload_rounds(
                todo, plan.runs, on_done=done, workers=workers, timeout=timeout, resync=resync
            )
    finally:
        if bar is not None:
            bar.close()
    return plan.ordered_results()


def _progress_bar(total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc="sync", unit="run", file=sys.stderr, leave=False)
