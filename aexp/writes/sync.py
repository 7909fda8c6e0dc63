"""Sync runs to their backends from a login node, as one document (`aexp.sync-offline/1`):
the results of aexp.sync.sync_offline_runs (one per W&B fragment and per replayed run), their
counts and the summary line `aexp sync-offline` prints.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from aexp.agent.history import record_action
from aexp.contract import document

SYNC = "aexp.sync-offline/1"


def reason_of(result: Any) -> str:
    """Why a sync result failed: the last line W&B (or the backend) said, else its exit code."""
    for text in (getattr(result, "stderr", None), getattr(result, "stdout", None)):
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    code = getattr(result, "returncode", None)
    return f"exit code {code}" if code is not None else "no reason given"


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
    actor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the sync (aexp.sync.sync_offline_runs, same arguments) and return `aexp.sync-offline/1`;
    a sync that did something is logged with `actor` (aexp.agent.history)."""
    from aexp.sync import sync_offline_runs

    results = sync_offline_runs(
        root,
        dry_run=dry_run,
        job_ids=job_ids,
        workers=workers,
        timeout=timeout,
        resync=resync,
        progress=progress,
        settings=settings,
    )
    counts = {"synced": 0, "skipped": 0, "failed": 0}
    for r in results:
        counts["skipped" if r.skipped else "synced" if r.ok else "failed"] += 1
    prefix = "dry run, would have " if dry_run else ""
    summary = (
        f"{prefix}synced {counts['synced']}, skipped {counts['skipped']}, failed {counts['failed']}"
    )
    synced = sorted({r.job_id for r in results if r.ok and not r.skipped and r.job_id})
    if synced and actor is not None and not dry_run:
        record_action(root, "sync", actor, synced)
    return document(
        SYNC,
        dry_run=dry_run,
        summary=summary,
        counts=counts,
        jobs=sorted({r.job_id for r in results if not r.skipped and r.job_id}),
        failures=[
            {
                "job_id": r.job_id,
                "run_id": r.run_id,
                "backend": r.backend,
                "path": r.path,
                "reason": reason_of(r),
            }
            for r in results
            if not r.ok and not r.skipped
        ],
        results=[dataclasses.asdict(r) for r in results],
    )


__all__ = ["SYNC", "reason_of", "sync_document"]
