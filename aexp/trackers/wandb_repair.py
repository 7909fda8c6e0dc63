"""Bringing a W&B run up to its journal: what the W&B backend does when its files lost rows.

W&B writes its offline log in 32 KiB blocks, so a killed attempt loses the rows of its last block
(often the whole attempt), and a W&B that could not be opened during an attempt has none of its
rows. The journal has them all. Two moments put them back, with the same run id and the same
steps, so that the history reaching the server equals the journal:

- before the next attempt continues (`WandbAdapter.repair`): the damaged fragments are mended and
  the rows the run lacks are written first into the new attempt's own fragment ("backfill");
- before a sync (`fill_gaps`): rows no fragment holds go into repair fragments, each started just
  after the fragment it completes, the last one carrying the run's summary and exit code.

Artifacts the journal names and W&B lacks are logged again from the job's files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aexp.journal import Artifact, Journal, Row
from aexp.trackers.base import RunHandle, TrackerAdapter

if TYPE_CHECKING:
    from aexp.wandb_offline.repair import RunInspection


def _say(run_id: str, lines: list[str]) -> None:
    for line in lines:
        print(f"note: W&B run {run_id}: {line}", file=sys.stderr)


def repair_before_attempt(
    adapter: TrackerAdapter, handle: RunHandle, journal: Journal, workdir: str | Path
) -> int:
    """Mend the run's fragments and arrange for the rows W&B lacks to be written when the next
    attempt opens the run (`handle.extra["_backfill"]`). Rows that belong between two existing
    fragments (an earlier repair that failed) get a repair fragment of their own. Returns the
    number of rows put back.
    """
    from aexp.wandb_offline.repair import inspect_run

    workdir = Path(workdir)
    inspection = inspect_run(workdir, workdir.name, handle.id, journal)
    _say(handle.id, inspection.notes())
    gaps = inspection.gaps()
    last = len(inspection.fragments) - 1
    written = 0
    for after, rows in gaps:
        if after == last:  # after every fragment: into the next attempt's own
            handle.extra["_backfill"] = [(row.step, row.metrics) for row in rows]
        else:
            write_fragment(
                adapter,
                handle,
                rows,
                (),
                workdir=workdir,
                start=inspection.start_between(after),
                exit_code=1,
            )
        written += len(rows)
    if inspection.missing_artifacts:
        handle.extra["_backfill_artifacts"] = [
            (a.name, str(a.resolve(workdir))) for a in inspection.missing_artifacts
        ]
    if written:
        _say(handle.id, [f"{written} row(s) the journal holds and W&B lost are written again"])
    return written


def placeable(inspection: RunInspection) -> tuple[list[tuple[int, list[Row]]], list[Row]]:
    """The gaps of `inspection` that can still be uploaded in their place, and the rows that
    cannot: rows that belong before a fragment the server already holds (the job document
    records it synced). wandb 0.31 renumbers a row behind the server's last step to after it
    (docs/sync.md), so such rows would arrive out of order; they are left out and reported."""
    held = [v.last_step for v in inspection.fragments if v.synced and v.last_step is not None]
    server_last = max(held, default=-1)  # the last step the server holds
    gaps, stranded = [], []
    for after, rows in inspection.gaps():
        behind = [row for row in rows if row.step <= server_last]
        stranded.extend(behind)
        if len(behind) < len(rows):
            gaps.append((after, [row for row in rows if row.step > server_last]))
    return gaps, stranded


def fill_gaps(
    adapter: TrackerAdapter,
    handle: RunHandle,
    inspection: RunInspection,
    journal: Journal,
    *,
    workdir: str | Path,
    gaps: list[tuple[int, list[Row]]] | None = None,
) -> list[Path]:
    """Write every row and artifact of `journal` that no fragment holds into repair fragments
    (one per gap, started right after the fragment it follows). The fragment that ends up last
    carries the run's whole summary and its exit code. `gaps` (default `inspection.gaps()`)
    limits it to some gaps (see `placeable`). Returns the folders written.
    """
    gaps = inspection.gaps() if gaps is None else gaps
    last = len(inspection.fragments) - 1
    artifacts = list(inspection.missing_artifacts)
    if artifacts and not any(after == last for after, _ in gaps):
        gaps = [*gaps, (last, [])]
    attempt = journal.last_attempt
    folders = []
    for after, rows in gaps:
        final = after == last
        code, preempted = 1, False
        if final and attempt is not None and attempt.finished:
            code, preempted = attempt.exit_code or 0, attempt.preempted
        folders.append(
            write_fragment(
                adapter,
                handle,
                rows,
                artifacts if final else (),
                workdir=workdir,
                start=inspection.start_between(after),
                exit_code=code,
                preempted=preempted,
                summary=journal.summary if final else None,
            )
        )
    return folders


# Where repair fragments are written before they join the run's other fragments (inside the
# job's `wandb/`, so that a moved project moves them along): a repair cut short by a kill stays
# there, never uploaded, and is cleared by the next repair.
REPAIR_STAGING = ".repair"
# The variables keep_wandb_local points at the job: restored afterwards, so that a process that
# repairs many jobs (a sync) hands its own values to the `wandb sync` it starts next.
_LOCAL_VARIABLES = (
    "WANDB_CACHE_DIR",
    "WANDB_DATA_DIR",
    "WANDB_ARTIFACT_DIR",
    "WANDB_ERROR_REPORTING",
    "WANDB__DISABLE_STATS",
)


@contextlib.contextmanager
def _restored_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _LOCAL_VARIABLES}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# How long wandb-core may take to write a finished fragment's last block.
WRITE_WAIT_SECONDS = 60.0


def wait_written(folder: Path, timeout: float = WRITE_WAIT_SECONDS) -> None:
    """Wait until wandb-core has written the fragment in `folder` to its end.

    `run.finish()` can return before wandb-core has written the log's last block (seen under
    load: a fragment read right after `finish` held its header only). Rewriting the log then
    (its start time) would lose what is still to come, and moving the folder would leave it
    behind; so the log must end in its `exit` record, untorn, and keep its size for one more
    look. Raises TrackerInitError when it does not within `timeout` seconds.
    """
    from aexp.errors import TrackerInitError
    from aexp.wandb_offline.decode import read_fragment
    from aexp.wandb_offline.framing import OfflineRunError

    deadline = time.monotonic() + timeout
    size = -1
    while True:
        try:
            fragment = read_fragment(folder)
            now = Path(folder, f"run-{fragment.run_id}.wandb").stat().st_size
            if fragment.exited and not fragment.torn and now == size:
                return
            size = now
        except (OfflineRunError, OSError):
            size = -1
        if time.monotonic() > deadline:
            raise TrackerInitError(f"W&B did not finish writing {folder} within {timeout:g} s.")
        time.sleep(0.05)


def write_fragment(
    adapter: TrackerAdapter,
    handle: RunHandle,
    rows: list[Row],
    artifacts: list[Artifact] | tuple[()],
    *,
    workdir: str | Path,
    start: float,
    exit_code: int,
    preempted: bool = False,
    summary: dict[str, Any] | None = None,
) -> Path:
    """One offline fragment of the run holding `rows` (at their steps) and `artifacts`, closed
    with `exit_code`, its start time set to `start` (seconds since the epoch) so that it is
    uploaded in its place. Returns its folder, `<workdir>/wandb/offline-run-...`.

    The fragment is written under `<workdir>/wandb/.repair/` and moved among the run's other
    fragments only once it is complete, its start time set: a repair killed half-way leaves
    nothing that a sync would upload. Raises TrackerInitError when W&B refuses.
    """
    from aexp.wandb_offline.folders import FRAGMENT_PREFIX, WANDB_DIR, fragment_log
    from aexp.wandb_offline.mend import set_start_time

    home = Path(workdir, WANDB_DIR)
    staging = home / REPAIR_STAGING
    leftovers = staging / WANDB_DIR
    if leftovers.is_dir():
        for old in leftovers.glob(FRAGMENT_PREFIX + "*"):
            shutil.rmtree(old, ignore_errors=True)  # a repair that was killed: never complete
    staging.mkdir(parents=True, exist_ok=True)
    plain = RunHandle(
        id=handle.id,
        url=handle.url,
        project=handle.project,
        group=handle.group,
        extra={k: v for k, v in handle.extra.items() if not k.startswith("_backfill")},
    )
    with _restored_environment():
        opened = adapter.resume_run(plain, workdir=staging)
        run = opened.extra["_run"]
        folder = Path(run.dir).parent  # run.dir is <fragment>/files
        try:
            if summary:
                run.summary.update(summary)
            for row in rows:
                run.log(row.metrics, step=row.step)
            for artifact in artifacts:
                path = artifact.resolve(workdir)
                if path.exists():
                    adapter.log_artifact(opened, artifact.name, path)
        finally:
            adapter.finish(opened, exit_code=exit_code, preempted=preempted)
    log = fragment_log(folder)
    if log is not None:
        wait_written(folder)
        set_start_time(log, start)
    target = home / folder.name
    number = 0
    while target.exists():  # an attempt started in the same second: a name of its own
        number += 1
        target = home / f"{folder.name}-r{number}"
    os.rename(folder, target)
    return target


__all__ = ["fill_gaps", "placeable", "repair_before_attempt", "write_fragment"]
