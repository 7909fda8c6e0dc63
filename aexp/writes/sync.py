"""Sync runs to their backends from a login node, as one document (`aexp.sync-offline/1`):
the results of aexp.sync.sync_offline_runs (one per W&B fragment and per replayed run), what
they come to per backend and in runs (aexp.sync.report) and the summary line `aexp
sync-offline` prints. The command and the MCP tools `sync_plan` and `sync` return it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from aexp.agent.history import check_recordable, record_action
from aexp.contract import document


def sync_document(
    root: str | os.PathLike,
    *,
    job_ids: Sequence[str] | None = None,
    dry_run: bool = False,
    resync: bool = False,
    workers: int | None = None,
    timeout: float | None = None,
    progress: bool = False,
    settings: Any = None,
    verbose: bool = False,
    actor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the sync (aexp.sync.sync_offline_runs, same arguments) and return
    `aexp.sync-offline/1`; a sync that did something is logged with `actor`
    (aexp.agent.history). KeyboardInterrupt passes (the sync said what did not finish)."""
    from aexp.sync import sync_offline_runs
    from aexp.sync.report import SCHEMA, summarize

    if actor is not None and not dry_run:
        check_recordable(root)  # before anything is uploaded: its record must follow it
    results = sync_offline_runs(
        root,
        dry_run=dry_run,
        job_ids=job_ids,
        workers=workers,
        timeout=timeout,
        resync=resync,
        progress=progress,
        settings=settings,
        verbose=verbose,
    )
    summary = summarize(results, dry_run=dry_run)
    worked = sorted({r.job_id for r in results if r.ok and not r.skipped and r.job_id})
    if worked and actor is not None and not dry_run:
        record_action(root, "sync", actor, worked)
    return document(
        SCHEMA,
        dry_run=dry_run,
        summary=summary.line(),
        backends=summary.as_json(),
        corrupt=summary.corrupt,
        failed=summary.failed,
        jobs=worked,
        results=[dataclasses.asdict(r) for r in results],
    )


__all__ = ["sync_document"]
