"""SyncResult: what happened to one W&B fragment, or to one run in a replayed backend, and the
skip reasons a result can carry. Every other module of the sync reports through these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aexp.wandb_offline import FragmentFolder

# Skip reasons (SyncResult.skipped) that callers may compare against.
ALREADY_SYNCED = "already synced"
STILL_EXECUTING = "still executing"
SET_ASIDE = "held no run; set aside (its rows come from the journal)"
# The start of the reason of a run whose backend this host cannot sync to (said once per sync).
NOT_ATTEMPTED = "not attempted on this host"


@dataclass
class SyncResult:
    """What happened to one offline-run folder (one fragment of a W&B run), or, for a backend fed
    by replay (`backend` other than "wandb"), to one run's replay (`path`: its journal), or to a
    whole job that could not be read (`backend` "", `path`: the job's directory)."""

    path: str  # the offline-run folder (W&B), the run's journal (a replayed backend), or the job
    job_id: str | None
    run_id: str | None
    ok: bool
    skipped: str | None  # why nothing was uploaded ("already synced", "still executing", ...)
    returncode: int | None  # of the `wandb sync` process (None: not run, or killed)
    stdout: str
    stderr: str  # W&B's lines about this run; for a failure the last line is the reason
    duration: float  # seconds this fragment's upload took (0 when skipped)
    backend: str = "wandb"


def result_for(
    frag: FragmentFolder,
    *,
    ok: bool,
    skipped: str | None = None,
    stdout: str = "",
    stderr: str = "",
    returncode: int | None = None,
    duration: float = 0.0,
) -> SyncResult:
    """The SyncResult of `frag`; the keyword arguments are its fields (defaults: nothing ran)."""
    return SyncResult(
        path=str(frag.folder),
        job_id=frag.job_id,
        run_id=frag.run_id,
        ok=ok,
        skipped=skipped,
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        duration=duration,
    )


def job_result(
    job_id: str,
    path: str,
    *,
    ok: bool,
    skipped: str | None = None,
    stderr: str = "",
    run_id: str | None = None,
    backend: str = "",
) -> SyncResult:
    """The SyncResult of a whole job (`backend` ""): one whose document cannot be read, or a
    backend of it that was not attempted (`path`: the job's directory)."""
    return replay_result(backend, path, job_id, run_id, ok=ok, skipped=skipped, stderr=stderr)


def replay_result(
    backend: str,
    journal: str | Path,
    job_id: str,
    run_id: str | None,
    *,
    ok: bool,
    skipped: str | None = None,
    stdout: str = "",
    stderr: str = "",
    duration: float = 0.0,
) -> SyncResult:
    """The SyncResult of one run's replay into `backend` (its `path` is the run's journal)."""
    return SyncResult(
        path=str(journal),
        job_id=job_id,
        run_id=run_id,
        ok=ok,
        skipped=skipped,
        returncode=None,
        stdout=stdout,
        stderr=stderr,
        duration=duration,
        backend=backend,
    )
