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

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aexp.journal import Artifact, Journal, Row
from aexp.trackers.base import RunHandle

if TYPE_CHECKING:
    from aexp.trackers.wandb import WandbAdapter
    from aexp.wandb_offline.repair import RunInspection


def _say(run_id: str, lines: list[str]) -> None:
    for line in lines:
        print(f"note: W&B run {run_id}: {line}", file=sys.stderr)


def repair_before_attempt(
    adapter: WandbAdapter, handle: RunHandle, journal: Journal, workdir: str | Path
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


def fill_gaps(
    adapter: WandbAdapter,
    handle: RunHandle,
    inspection: RunInspection,
    journal: Journal,
    *,
    workdir: str | Path,
) -> list[Path]:
    """Write every row and artifact of `journal` that no fragment holds into repair fragments
    (one per gap, started right after the fragment it follows). The fragment that ends up last
    carries the run's whole summary and its exit code. Returns the folders written.
    """
    gaps = inspection.gaps()
    last = len(inspection.fragments) - 1
    artifacts = list(inspection.missing_artifacts)
    if artifacts and not gaps:
        gaps = [(last, [])]
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


def write_fragment(
    adapter: WandbAdapter,
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
    uploaded in its place. Returns its folder. Raises TrackerInitError when W&B refuses."""
    from aexp.wandb_offline.folders import fragment_log
    from aexp.wandb_offline.mend import set_start_time

    plain = RunHandle(
        id=handle.id,
        url=handle.url,
        project=handle.project,
        group=handle.group,
        extra={k: v for k, v in handle.extra.items() if not k.startswith("_backfill")},
    )
    opened = adapter.resume_run(plain, workdir=workdir)
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
        set_start_time(log, start)
    return folder


__all__ = ["fill_gaps", "repair_before_attempt", "write_fragment"]
