"""Finding W&B offline runs on disk: the file system only, no wandb import.

Every execution attempt of a W&B offline run leaves one folder ("fragment") in its job:
`<job workspace>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<run id>[-N]/run-<run id>.wandb`, where `-N`
separates attempts that started within the same second. One listing of the workspace and one of
each job's `wandb/` directory find them all: the cost grows with the number of jobs, not with the
files inside runs.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

WANDB_DIR = "wandb"
FRAGMENT_PREFIX = "offline-run-"
FRAGMENT_GLOB = FRAGMENT_PREFIX + "*"
SYNCED_SUFFIX = ".synced"

_FOLDER = re.compile(r"^offline-run-(\d{8}_\d{6})-(.+?)(?:-(\d+))?$")
_FOLDER_NAME = re.compile(r"^offline-run-(\d{8}_\d{6})-(.+)$")
_SAME_SECOND = re.compile(r"^(.+)-(\d+)$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def fragment_log(folder: str | os.PathLike) -> Path | None:
    """The `run-<id>.wandb` transaction log inside an offline-run folder, or None."""
    logs = sorted(Path(folder).glob("run-*.wandb"))
    return logs[0] if logs else None


def folder_order(folder: Path) -> tuple[str, int, str]:
    match = _FOLDER.match(folder.name)
    if not match:
        return ("", 0, folder.name)
    return (match.group(1), int(match.group(3) or 0), folder.name)


@dataclass
class FragmentFolder:
    """Where one offline-run folder is, and its order among the job's fragments."""

    folder: Path
    job_id: str
    run_id: str
    log: Path | None  # run-<id>.wandb
    order: tuple[str, int, str]

    @property
    def marker(self) -> Path | None:
        return self.log.with_name(self.log.name + SYNCED_SUFFIX) if self.log else None

    def synced(self) -> bool:
        marker = self.marker
        return marker is not None and marker.exists()


def _parse_folder(folder: Path) -> tuple[str, int, Path | None]:
    """(run id, W&B's same-second suffix, the .wandb log or None) of an offline-run folder.

    The id is read from the folder name and confirmed by one stat of `run-<id>.wandb`; only a
    name that cannot be read that way costs a listing of the folder (never a walk below it).
    """
    match = _FOLDER_NAME.match(folder.name)
    rest = match.group(2) if match else folder.name[len(FRAGMENT_PREFIX) :]
    candidates = [(rest, 0)]
    suffixed = _SAME_SECOND.match(rest)
    if suffixed:
        candidates.append((suffixed.group(1), int(suffixed.group(2))))
    for run_id, suffix in candidates:
        log = folder / f"run-{run_id}.wandb"
        if log.is_file():
            return run_id, suffix, log
    with contextlib.suppress(OSError):
        with os.scandir(folder) as entries:
            logs = sorted(
                e.name for e in entries if e.name.startswith("run-") and e.name.endswith(".wandb")
            )
        if logs:
            run_id = logs[0][len("run-") : -len(".wandb")]
            suffix = int(suffixed.group(2)) if suffixed and suffixed.group(1) == run_id else 0
            return run_id, suffix, folder / logs[0]
    return candidates[-1][0], candidates[-1][1], None


def job_fragment_folders(job_dir: str, job_id: str) -> list[FragmentFolder]:
    """The offline-run folders of one job (`<job_dir>/wandb/offline-run-*`), start-time order."""
    # Plain strings until a fragment is found: most jobs of a big sweep have none (yet), and
    # pathlib would cost more than the directory listing itself.
    try:
        with os.scandir(f"{job_dir}{os.sep}{WANDB_DIR}") as entries:
            folders = [
                Path(e.path)
                for e in entries
                if e.name.startswith(FRAGMENT_PREFIX) and e.is_dir(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    fragments = []
    for folder in folders:
        run_id, suffix, log = _parse_folder(folder)
        match = _FOLDER_NAME.match(folder.name)
        order = (match.group(1) if match else "", suffix, folder.name)
        fragments.append(FragmentFolder(folder, job_id, run_id, log, order))
    return sorted(fragments, key=lambda f: f.order)


ONLINE_PREFIX = "run-"


def job_online_folders(job_dir: str, job_id: str, run_id: str) -> list[FragmentFolder]:
    """The local folders of online attempts of run `run_id` (`<job_dir>/wandb/run-<time>-<id>`,
    where wandb keeps its own copy of what it streamed), in start-time order."""
    try:
        with os.scandir(f"{job_dir}{os.sep}{WANDB_DIR}") as entries:
            folders = [
                Path(e.path)
                for e in entries
                if e.name.startswith(ONLINE_PREFIX)
                and e.name.endswith(f"-{run_id}")
                and e.is_dir(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for folder in sorted(folders):
        log = folder / f"run-{run_id}.wandb"
        if log.is_file():
            found.append(FragmentFolder(folder, job_id, run_id, log, (folder.name, 0, "")))
    return found


def is_job_dir(entry: os.DirEntry[str]) -> bool:
    """Whether a workspace entry is a signac job directory (a 32-hex-digit name, not a link)."""
    return bool(_JOB_ID.match(entry.name)) and entry.is_dir(follow_symlinks=False)


def job_dirs(
    workspace: str | os.PathLike, job_ids: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """(job id, path) of every job directory of `workspace` (only `job_ids`, if given), sorted by
    id: one listing of the workspace, no signac. [] when there is no workspace yet."""
    wanted = None if job_ids is None else {str(j) for j in job_ids}
    try:
        with os.scandir(workspace) as entries:
            return sorted(
                (e.name, e.path)
                for e in entries
                if (wanted is None or e.name in wanted) and is_job_dir(e)
            )
    except FileNotFoundError:
        return []


def workspace_fragment_folders(
    workspace: Path, job_ids: Iterable[str] | None = None
) -> dict[str, list[FragmentFolder]]:
    """{job id: its fragments in start-time order}, for jobs that have any (sorted by job id).

    One listing of the workspace and one of each job's `wandb/` directory: the cost grows with
    the number of jobs, not with the files inside runs.
    """
    found = {}
    for name, path in job_dirs(workspace, job_ids):
        fragments = job_fragment_folders(path, name)
        if fragments:
            found[name] = fragments
    return found


def find_fragments(job_dir: str | os.PathLike) -> list[Path]:
    """Offline-run folders of one job that hold a W&B log, in start-time order.

    The order comes from the folder names (start second, then W&B's `-N` suffix for runs started
    twice within one second); `read_fragment` refines it with the recorded start time.
    """
    job_dir = Path(job_dir)
    return [f.folder for f in job_fragment_folders(str(job_dir), job_dir.name) if f.log]


def iter_fragment_folders(workspace: str | os.PathLike) -> Iterator[Path]:
    """Every offline-run folder holding a W&B log under a signac workspace."""
    for fragments in workspace_fragment_folders(Path(workspace)).values():
        yield from (f.folder for f in fragments if f.log)


__all__ = [
    "FRAGMENT_GLOB",
    "FRAGMENT_PREFIX",
    "SYNCED_SUFFIX",
    "WANDB_DIR",
    "FragmentFolder",
    "find_fragments",
    "folder_order",
    "fragment_log",
    "is_job_dir",
    "iter_fragment_folders",
    "job_dirs",
    "job_fragment_folders",
    "job_online_folders",
    "workspace_fragment_folders",
]
