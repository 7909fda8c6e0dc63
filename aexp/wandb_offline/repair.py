"""Comparing a run's W&B fragments with its journal: what is damaged, what is missing, where.

The journal is the truth; the W&B offline fragments of a run mirror it, one per attempt. A
SIGKILL costs W&B the rows of its unwritten 32 KiB block (the whole attempt when it logged little).
`inspect_run` mends what can be mended in place (aexp.wandb_offline.mend) and says which history
rows of the journal no fragment holds, and after which fragment each belongs, so that the caller
can write them into the run (the next attempt's own fragment, or a repair fragment at sync time)
and the history that reaches the server equals the journal: every step once, in order.

Upload order is the order of the fragments' start times (what `wandb sync` itself uses), and W&B
renumbers any row whose step is behind what the server already holds, so a row must go into the
run between the fragments whose steps surround it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aexp.journal import Artifact, Journal, Row
from aexp.wandb_offline.decode import Fragment, read_fragment
from aexp.wandb_offline.folders import FragmentFolder, job_fragment_folders, job_online_folders
from aexp.wandb_offline.framing import HEADER_BYTES, OfflineRunError
from aexp.wandb_offline.mend import cut_back, relocate, set_aside


@dataclass
class FragmentView:
    """One fragment as the repair sees it: its folder, start time and the steps it holds."""

    folder: Path
    start: float  # seconds since the epoch (run record), or the folder's time as a fallback
    steps: frozenset[int]
    first_step: int | None
    last_step: int | None
    synced: bool = False  # known synced (from the job document): not decoded again
    artifacts: frozenset[str] = frozenset()
    ended: bool = True  # False: the server lacks its end (exit code, summary; job document)


@dataclass
class RunInspection:
    """What `inspect_run` found and did for one run of one job."""

    fragments: list[FragmentView] = field(default_factory=list)  # healthy ones, upload order
    set_aside: list[Path] = field(default_factory=list)  # logs without a run, renamed away
    cut: list[tuple[Path, int]] = field(default_factory=list)  # torn logs and bytes cut off
    relocated: list[tuple[Path, int]] = field(default_factory=list)  # logs and paths rewritten
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # left alone, with reason
    missing: list[Row] = field(default_factory=list)  # journal rows no fragment holds
    missing_artifacts: list[Artifact] = field(default_factory=list)  # journal's, not in W&B

    def notes(self) -> list[str]:
        """One line per thing done, for the user (each reported once: a mended fragment is
        healthy the next time)."""
        lines = [
            f"{p.parent.name}: held no run (its attempt was killed before W&B wrote a block); "
            f"set aside as {p.name}, its rows come from the journal"
            for p in self.set_aside
        ]
        lines += [
            f"{p.parent.name}: torn by a killed attempt; cut back to its complete records "
            f"({n} bytes dropped, the original kept as {p.name}.torn)"
            for p, n in self.cut
        ]
        lines += [
            f"{p.parent.name}: the project moved since the run; {n} staged path(s) now point "
            "into the job's directory"
            for p, n in self.relocated
        ]
        lines += [f"{p.parent.name}: cannot be read: {why}" for p, why in self.unreadable]
        return lines

    def gaps(self) -> list[tuple[int, list[Row]]]:
        """The missing rows grouped by where they belong: (index of the healthy fragment, in
        upload order, that they follow, or -1 for before the first; their rows in step order).
        """
        groups: dict[int, list[Row]] = {}
        for row in self.missing:
            after = -1
            for index, view in enumerate(self.fragments):
                # A fragment without rows does not hold a row back: it may go after it.
                if view.last_step is None or view.last_step < row.step:
                    after = index
            groups.setdefault(after, []).append(row)
        return sorted(groups.items())

    def start_between(self, after: int) -> float:
        """A start time for a fragment that goes right after fragment `after` (-1: first)."""
        if not self.fragments:
            import time

            return time.time()
        if after < 0:
            return self.fragments[0].start - 1e-3
        start = self.fragments[after].start
        if after + 1 < len(self.fragments):
            return start + min(1e-3, (self.fragments[after + 1].start - start) / 2)
        return start + 1e-3


def _contiguous(record: Mapping[str, Any]) -> bool:
    first, last, rows = record.get("first"), record.get("last"), record.get("rows")
    if first is None or last is None:
        return rows == 0
    return isinstance(rows, int) and rows == int(last) - int(first) + 1


def describe(view: FragmentView) -> dict[str, Any]:
    """What the job document keeps of a synced fragment (the `known` of `inspect_run`)."""
    record = {
        "first": view.first_step,
        "last": view.last_step,
        "rows": len(view.steps),
        "start": view.start,
        "artifacts": sorted(view.artifacts),
    }
    if not view.ended:
        record["ended"] = False
    return record


def _known_view(folder: FragmentFolder, record: Mapping[str, Any]) -> FragmentView:
    """A fragment the job document records synced, as the document says (aexp.schema checked
    the record's types). A record whose steps have gaps is read from the fragment, up to its
    recorded last step (an upload the server holds only part of is recorded up to there)."""
    first, last = record.get("first"), record.get("last")
    start = float(record.get("start") or _folder_seconds(folder))
    artifacts = frozenset(record.get("artifacts") or ())
    ended = record.get("ended") is not False
    if first is None or last is None:
        steps: frozenset[int] = frozenset()
    elif _contiguous(record):
        steps = frozenset(range(int(first), int(last) + 1))
    else:
        try:
            read = read_fragment(folder.folder).steps
        except (OfflineRunError, OSError):
            read = range(int(first), int(last) + 1)
        steps = frozenset(step for step in read if int(first) <= step <= int(last))
    return FragmentView(
        folder.folder,
        start,
        steps,
        min(steps) if steps else None,
        max(steps) if steps else None,
        synced=True,
        artifacts=artifacts,
        ended=ended,
    )


def artifact_name(name: str) -> str:
    """The name W&B gives an artifact logged under `name` (letters, digits, '_', '.', '-')."""
    return re.sub(r"[^\w.-]", "-", name)


def _view(folder: FragmentFolder, fragment: Fragment) -> FragmentView:
    steps = frozenset(fragment.steps)
    return FragmentView(
        folder=folder.folder,
        start=fragment.start_seconds or _folder_seconds(folder),
        steps=steps,
        first_step=min(steps) if steps else None,
        last_step=max(steps) if steps else None,
        artifacts=frozenset(fragment.artifacts),
    )


def _shorter_than_a_header(log: Path) -> bool:
    try:
        return log.stat().st_size < len(HEADER_BYTES)
    except OSError:
        return False


def _folder_seconds(folder: FragmentFolder) -> float:
    try:
        return folder.folder.stat().st_mtime
    except OSError:
        return 0.0


def inspect_run(
    job_path: str | os.PathLike,
    job_id: str,
    run_id: str,
    journal: Journal,
    *,
    known: Mapping[str, Mapping[str, Any]] | None = None,
    mend: bool = True,
    online: bool = False,
) -> RunInspection:
    """Mend the W&B fragments of `run_id` in the job and compare them with `journal`.

    `known` maps the folder names of fragments already synced (the job document records them) to
    `{"first", "last", "rows", "start", "artifacts"}`: they count as the server's, as recorded
    (one whose rows fill first..last is not decoded again; one whose steps have gaps is read up
    to its recorded last step).
    With `mend`, a log without a run is set aside, a torn log is cut back, and the staged
    artifact paths of a moved project are rewritten (aexp.wandb_offline.mend); without, the
    fragments are only read. With `online`, the local copies of online attempts
    (`wandb/run-<time>-<id>/`) count as fragments the server holds (`synced`; read, never mended).
    """
    job_path = Path(job_path)
    known = dict(known or {})
    result = RunInspection()
    for folder in job_fragment_folders(str(job_path), job_id):
        if folder.run_id != run_id or folder.log is None:
            continue
        record = known.get(folder.folder.name)
        if record is not None:
            result.fragments.append(_known_view(folder, record))
            continue
        try:
            fragment = read_fragment(folder.folder)
        except (OfflineRunError, OSError) as exc:
            if mend and _shorter_than_a_header(folder.log):
                # Killed before W&B wrote even its file header: no run, like a header-only log.
                result.set_aside.append(set_aside(folder.log))
            else:
                result.unreadable.append((folder.log, str(exc)))
            continue
        if not fragment.has_run:
            if mend:
                result.set_aside.append(set_aside(folder.log))
            continue
        if fragment.torn and mend:
            result.cut.append((folder.log, cut_back(folder.log)))
        if mend and any(p and not os.path.exists(p) for p in fragment.staged):
            count = relocate(folder.log, job_path, job_id)
            if count:
                result.relocated.append((folder.log, count))
        result.fragments.append(_view(folder, fragment))
    for folder in job_online_folders(str(job_path), job_id, run_id) if online else ():
        try:
            fragment = read_fragment(folder.folder)
        except (OfflineRunError, OSError):
            continue  # what it streamed cannot be known: its rows count as missing
        if fragment.has_run:
            result.fragments.append(replace(_view(folder, fragment), synced=True))
    result.fragments.sort(key=lambda view: view.start)
    present: set[int] = set()
    for view in result.fragments:
        present |= view.steps
    result.missing = [
        row for row in journal.history() if row.step is not None and row.step not in present
    ]
    names = {name for view in result.fragments for name in view.artifacts}
    result.missing_artifacts = [
        artifact for artifact in journal.artifacts if artifact_name(artifact.name) not in names
    ]
    return result


__all__ = ["FragmentView", "RunInspection", "artifact_name", "describe", "inspect_run"]
