"""Getting one W&B run ready for upload, under its job's claim: the journal's point of view.

For the run a job is bound to:

1. read its journal (the one record of the run; aexp/journal.py);
2. `inspect_run` its fragments: a log without a run is set aside, a torn log cut back, the staged
   artifacts of a moved project pointed at the job's directory as it is now (each reported once,
   as what it is: a mended fragment is healthy the next time); fragments the job document records
   as synced are not decoded again;
3. write the rows and artifacts the journal holds and no fragment does into repair fragments
   (`fill_gaps`, each started right after the fragment it completes; wandb is imported in this
   process only then);
4. sort the healthy fragments: recorded in the document -> synced; not recorded but carrying W&B's
   synced marker (a sync killed after W&B wrote its marker, or a run uploaded by a bare `wandb
   sync`) -> taken as uploaded and recorded now, never uploaded twice; anything else -> to upload,
   in start-time order. `resync` uploads every healthy fragment again.

A fragment set aside is never handed to `wandb sync` (one header-only log in a `wandb sync`
process makes it upload nothing for every run in it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aexp.binding import backend_parts
from aexp.handles import adapter_for
from aexp.journal import Journal, journal_path, read_journal
from aexp.sync.plan import WANDB, JobWork
from aexp.sync.record import record_fragments
from aexp.sync.result import ALREADY_SYNCED, SET_ASIDE, SyncResult, result_for
from aexp.trackers.base import RunHandle
from aexp.wandb_offline import FragmentFolder, job_fragment_folders
from aexp.wandb_offline.folders import SYNCED_SUFFIX, folder_order
from aexp.wandb_offline.repair import FragmentView, RunInspection, describe, inspect_run

Say = Callable[[str], None]


@dataclass
class WandbRun:
    """One job's W&B run as this sync sees it once it is ready for upload."""

    work: JobWork
    views: dict[Path, FragmentView] = field(default_factory=dict)  # healthy ones, by folder
    todo: list[FragmentFolder] = field(default_factory=list)  # to upload, start-time order
    stranded: int = 0  # journal rows that cannot be placed any more (see `placeable`)

    @property
    def project(self) -> str | None:
        return self.work.binding.get("project") or None

    @property
    def entity(self) -> str | None:
        part = backend_parts(self.work.binding).get(WANDB) or {}
        options = part.get("options") or {}
        return options.get("entity") or (part.get("extra") or {}).get("entity") or None

    @property
    def complete(self) -> bool:
        """Every row of the journal is in a fragment that is synced (or about to be)."""
        return self.stranded == 0


def known_fragments(binding: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fragments the job document records as synced: {folder name: describe(view)}."""
    part = backend_parts(binding).get(WANDB) or {}
    fragments = (part.get("state") or {}).get("fragments")
    return dict(fragments) if isinstance(fragments, dict) else {}


def load_journal(work: JobWork) -> Journal:
    """The run's journal; an empty one for a run bound before journals existed."""
    path = journal_path(work.job.path, work.run_id)
    try:
        return read_journal(path)
    except FileNotFoundError:
        return Journal(path=path, run_id=work.run_id)


def prepare_wandb(
    work: JobWork, *, resync: bool, dry_run: bool, say: Say
) -> tuple[WandbRun, list[SyncResult]]:
    """Mend, complete and sort the fragments of `work`'s run (module docstring).

    Must be called with the job's claim held (except for a dry run, which changes nothing).
    Returns the run and the results of the folders that need no upload. Raises what writing a
    repair fragment raises (TrackerInitError when W&B refuses, OSError).
    """
    journal = load_journal(work)
    known = {} if resync else known_fragments(work.binding)
    online = not work.binding.get("offline")
    inspection = inspect_run(
        work.job.path,
        work.job_id,
        work.run_id,
        journal,
        known=known,
        mend=not dry_run,
        online=online,
    )
    for line in inspection.notes():
        say(line)
    inspection, stranded = _complete(
        work, journal, inspection, known, dry_run=dry_run, say=say, online=online
    )
    run = WandbRun(work, {view.folder: view for view in inspection.fragments}, [], stranded)

    results: list[SyncResult] = []
    taken: dict[str, dict[str, Any]] = {}
    by_folder = {f.folder: f for f in job_fragment_folders(work.job.path, work.job_id)}
    for view in inspection.fragments:
        frag = by_folder.get(view.folder) or _folder_of(work, view.folder)
        if view.synced:
            results.append(result_for(frag, ok=True, skipped=ALREADY_SYNCED))
        elif not resync and _has_marker(view.folder, work.run_id):
            taken[view.folder.name] = describe(view)
            results.append(result_for(frag, ok=True, skipped=ALREADY_SYNCED))
        else:
            run.todo.append(frag)
    if taken and not dry_run:
        record_fragments(work.job, work.run_id, taken)
        say(
            f"{len(taken)} fragment(s) carry W&B's synced marker but were not recorded (a sync "
            "cut short after W&B's upload): taken as uploaded and recorded"
        )
    healthy = set(run.views)
    unreadable = {p.parent for p, _ in inspection.unreadable}
    for folder, frag in by_folder.items():
        if frag.run_id != work.run_id or folder in healthy:
            continue
        if folder in unreadable:
            why = next(w for p, w in inspection.unreadable if p.parent == folder)
            skipped = f"cannot be read ({why}); left alone, its rows come from the journal"
        elif frag.log is None:
            skipped = SET_ASIDE
        else:  # only read, not mended (a dry run): a log without a run
            skipped = "holds no run; a sync sets it aside"
        results.append(result_for(frag, ok=True, skipped=skipped))
    return run, results


def _complete(
    work: JobWork,
    journal: Journal,
    inspection: RunInspection,
    known: dict[str, dict[str, Any]],
    *,
    dry_run: bool,
    say: Say,
    online: bool = False,
) -> tuple[RunInspection, int]:
    """Write the rows and artifacts the fragments lack into repair fragments; returns the
    inspection of the run as it is afterwards and the number of rows that cannot be placed."""
    from aexp.trackers.wandb_repair import placeable

    gaps, stranded = placeable(inspection)
    last = len(inspection.fragments) - 1
    attempt = journal.last_attempt
    if (
        inspection.fragments
        and not inspection.fragments[-1].ended
        and attempt is not None
        and attempt.finished
        and not any(after == last for after, _ in gaps)
    ):
        # The server holds every row of the last fragment but not its end (an upload cut
        # short): a fragment with the run's summary and exit code follows it.
        gaps = [*gaps, (last, [])]
        say(
            "the server lacks the run's end (its upload was cut short): a fragment with the "
            "run's summary and exit code follows"
        )
    if stranded:
        say(
            f"{len(stranded)} row(s) (steps {stranded[0].step}..{stranded[-1].step}) belong "
            "before fragments the server already holds; uploading them would renumber them, so "
            "they stay in the journal only"
        )
    artifacts = [a for a in inspection.missing_artifacts if a.resolve(work.job.path).exists()]
    for artifact in inspection.missing_artifacts:
        if artifact not in artifacts:
            say(f"artifact {artifact.name!r}: its file {artifact.path} is gone; not uploaded")
    rows = sum(len(r) for _, r in gaps)
    if not gaps and not artifacts:
        return inspection, len(stranded)
    what = f"{rows} row(s)" + (f" and {len(artifacts)} artifact(s)" if artifacts else "")
    if not rows and not artifacts:
        what = "the run's end"
    if dry_run:
        say(f"would write {what} the journal holds and W&B lacks into repair fragment(s)")
        return inspection, len(stranded)
    from aexp.trackers.wandb_repair import fill_gaps

    inspection.missing_artifacts = artifacts
    adapter: Any = adapter_for(work.binding, WANDB)  # imports wandb
    folders = fill_gaps(
        adapter,
        repair_handle(work, journal),
        inspection,
        journal,
        workdir=work.job.path,
        gaps=gaps,
    )
    names = ", ".join(folder.name for folder in folders)
    say(f"{what} the journal holds and W&B lacked written into {names}")
    again = inspect_run(
        work.job.path, work.job_id, work.run_id, journal, known=known, online=online
    )
    for line in again.notes():
        say(line)
    return again, len(stranded)


def repair_handle(work: JobWork, journal: Journal) -> RunHandle:
    """The handle a repair fragment is opened with: the run as its journal's `init_run` and the
    binding describe it, always offline (the fragment is uploaded by `wandb sync` like the
    others, whether the run was online or offline)."""
    binding, init = work.binding, journal.init
    part = backend_parts(binding).get(WANDB) or {}
    options = part.get("options") or {}
    return RunHandle(
        id=work.run_id,
        url=part.get("url"),
        project=str(binding.get("project") or init.get("project") or ""),
        group=str(binding.get("group") or init.get("group") or ""),
        extra={
            "entity": options.get("entity") or (part.get("extra") or {}).get("entity"),
            "tags": list(binding.get("tags") or init.get("tags") or []),
            "notes": binding.get("notes", init.get("notes")),
            "offline": True,
            "_config": dict(journal.config),
        },
    )


def _has_marker(folder: Path, run_id: str) -> bool:
    return (folder / f"run-{run_id}.wandb{SYNCED_SUFFIX}").exists()


def _folder_of(work: JobWork, folder: Path) -> FragmentFolder:
    log = folder / f"run-{work.run_id}.wandb"
    return FragmentFolder(folder, work.job_id, work.run_id, log, folder_order(folder))


def stderr_say(job_id: str, run_id: str) -> Say:
    """A `say` that prints `note: job <id> W&B run <run id>: <line>` on stderr."""

    def say(line: str) -> None:
        print(f"note: job {job_id} W&B run {run_id}: {line}", file=sys.stderr)

    return say


__all__ = ["WandbRun", "known_fragments", "load_journal", "prepare_wandb", "repair_handle"]
