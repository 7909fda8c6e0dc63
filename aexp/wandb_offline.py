"""Read W&B offline runs from their local folders, without network and without `wandb sync`.

An offline run is written to `<job workspace>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>[-N]/`,
and everything W&B knows about it is in that folder's transaction log `run-<id>.wandb`. W&B
cannot resume an offline run, so every execution attempt leaves one more folder ("fragment")
with the same run id; `list_offline_runs` merges the fragments of one id into one `RunRecord`.

The transaction log uses LevelDB's log framing:

    file header   7 bytes: b":W&B", magic 0xBEE1 (u16, little-endian), version (u8, 0)
    blocks        32 KiB each, counted from the start of the file (the header is in block 0)
    record        7-byte header <crc32 u32, length u16, type u8> then `length` bytes of data;
                  type 1 = a whole payload, 2/3/4 = first/middle/last piece of a payload split
                  across blocks; crc32 (zlib's) covers the type byte and the data
    padding       fewer than 7 bytes left in a block are zero-filled; the next record starts at
                  the next block

Each payload is one protobuf `wandb.proto.wandb_internal_pb2.Record` (wandb 0.31 ships no reader
of its own in Python, so the framing is decoded here and the protobuf with wandb's own class).
A run still being written, or one whose process was killed, ends in a torn record: reading stops
there and what came before is kept.

Finding fragments needs only the file system; decoding them needs the wandb package (its protobuf
classes), imported on first use.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aexp.errors import TrackerInitError
from aexp.trackers.base import RunRecord

WANDB_DIR = "wandb"
FRAGMENT_PREFIX = "offline-run-"
FRAGMENT_GLOB = FRAGMENT_PREFIX + "*"
SYNCED_SUFFIX = ".synced"

FILE_HEADER = struct.Struct("<4sHB")
MAGIC_IDENT, MAGIC_NUMBER, LOG_VERSION = b":W&B", 0xBEE1, 0
RECORD_HEADER = struct.Struct("<IHB")
BLOCK_SIZE = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

_FOLDER = re.compile(r"^offline-run-(\d{8}_\d{6})-(.+?)(?:-(\d+))?$")
_FOLDER_NAME = re.compile(r"^offline-run-(\d{8}_\d{6})-(.+)$")
_SAME_SECOND = re.compile(r"^(.+)-(\d+)$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


class OfflineRunError(Exception):
    """A fragment's transaction log is missing or is not a W&B log (message says which)."""


@dataclass
class Fragment:
    """One offline folder of a run: what one execution attempt recorded."""

    path: str  # the offline-run-* folder
    run_id: str
    project: str = ""
    entity: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    start_time: str | None = None  # ISO-8601 UTC, from the run record
    state: str = "running"  # running | finished | failed | preempted
    exit_code: int | None = None
    preempting: bool = False
    first_step: int | None = None
    last_step: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    synced: bool = False  # W&B's `.wandb.synced` marker is present
    torn: bool = False  # the log ends in an incomplete or damaged record


@dataclass
class OfflineRun:
    """All fragments of one run id, oldest first."""

    run_id: str
    fragments: list[Fragment]

    @property
    def synced(self) -> bool:
        """Every fragment carries W&B's synced marker."""
        return all(f.synced for f in self.fragments)

    @property
    def record(self) -> RunRecord:
        """The run as one `RunRecord` (state of the newest fragment, config and summary merged)."""
        config: dict[str, Any] = {}
        summary: dict[str, Any] = {}
        for fragment in self.fragments:
            config.update(fragment.config)
            summary.update(fragment.summary)
        last = self.fragments[-1]
        return RunRecord(
            id=self.run_id,
            project=last.project,
            group=last.group,
            state=last.state,
            url=None,
            tags=list(last.tags),
            config=config,
            last_metrics={k: v for k, v in summary.items() if not k.startswith("_")},
            exit_code=last.exit_code,
            path=last.path,
        )


# -- finding fragments (file system only) -----------------------------------------------------
def fragment_log(folder: str | os.PathLike) -> Path | None:
    """The `run-<id>.wandb` transaction log inside an offline-run folder, or None."""
    logs = sorted(Path(folder).glob("run-*.wandb"))
    return logs[0] if logs else None


def _folder_order(folder: Path) -> tuple[str, int, str]:
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


def workspace_fragment_folders(
    workspace: Path, job_ids: Iterable[str] | None = None
) -> dict[str, list[FragmentFolder]]:
    """{job id: its fragments in start-time order}, for jobs that have any (sorted by job id).

    One listing of the workspace and one of each job's `wandb/` directory: the cost grows with
    the number of jobs, not with the files inside runs.
    """
    wanted = None if job_ids is None else {str(j) for j in job_ids}
    try:
        with os.scandir(workspace) as entries:
            jobs = sorted(
                (e.name, e.path)
                for e in entries
                if (wanted is None or e.name in wanted)
                and _JOB_ID.match(e.name)
                and e.is_dir(follow_symlinks=False)
            )
    except FileNotFoundError:
        return {}
    found = {}
    for name, path in jobs:
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


# -- decoding ---------------------------------------------------------------------------------
def _record_class() -> Any:
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError:
        raise TrackerInitError(
            "reading W&B offline runs needs the wandb package; install it with: "
            "pip install 'agentic-experiments[wandb]'."
        ) from None
    return wandb_internal_pb2.Record


def read_payloads(path: str | os.PathLike) -> tuple[list[bytes], bool]:
    """All complete payloads of a W&B transaction log and whether its tail was torn."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < FILE_HEADER.size:
        raise OfflineRunError(f"{path} is too short to be a W&B transaction log.")
    ident, magic, version = FILE_HEADER.unpack_from(data)
    if ident != MAGIC_IDENT or magic != MAGIC_NUMBER:
        raise OfflineRunError(f"{path} is not a W&B transaction log (bad header).")
    if version != LOG_VERSION:
        raise OfflineRunError(f"{path} uses W&B log version {version}, which aexp cannot read.")
    payloads: list[bytes] = []
    pending: list[bytes] | None = None
    pos, size = FILE_HEADER.size, len(data)
    while pos < size:
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < RECORD_HEADER.size:  # zero padding at the end of a block
            pos += left_in_block
            continue
        if pos + RECORD_HEADER.size > size:
            return payloads, True
        crc, length, kind = RECORD_HEADER.unpack_from(data, pos)
        start = pos + RECORD_HEADER.size
        if kind == 0 and length == 0:  # pre-allocated, never written: nothing more in this block
            pos += left_in_block
            continue
        if length > left_in_block - RECORD_HEADER.size or start + length > size:
            return payloads, True
        chunk = data[start : start + length]
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return payloads, True
        pos = start + length
        if kind == FULL:
            payloads.append(chunk)
            pending = None
        elif kind == FIRST:
            pending = [chunk]
        elif kind == MIDDLE and pending is not None:
            pending.append(chunk)
        elif kind == LAST and pending is not None:
            payloads.append(b"".join([*pending, chunk]))
            pending = None
        else:  # a piece without its beginning, or an unknown type: treat as damage
            return payloads, True
    return payloads, pending is not None


def _item_key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def read_fragment(folder: str | os.PathLike) -> Fragment:
    """Decode one offline-run folder (or its `.wandb` file) into a `Fragment`.

    Raises OfflineRunError for a folder without a readable W&B log, TrackerInitError if wandb
    is not installed.
    """
    folder = Path(folder)
    if folder.is_file():
        log, folder = folder, folder.parent
    else:
        log = fragment_log(folder)
    if log is None:
        raise OfflineRunError(f"{folder} holds no run-<id>.wandb transaction log.")
    record_class = _record_class()
    try:
        payloads, torn = read_payloads(log)
    except OSError as exc:
        raise OfflineRunError(f"cannot read {log}: {exc.strerror or exc}.") from None
    run_id = log.name[len("run-") : -len(".wandb")]
    fragment = Fragment(path=str(folder), run_id=run_id, torn=torn)
    fragment.synced = log.with_name(log.name + SYNCED_SUFFIX).exists()
    exited = False
    for payload in payloads:
        record = record_class()
        try:
            record.ParseFromString(payload)
        except Exception:  # protobuf's DecodeError: a damaged payload with a valid crc
            fragment.torn = True
            break
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            fragment.run_id = run.run_id or fragment.run_id
            fragment.project = run.project
            fragment.entity = run.entity
            fragment.group = run.run_group
            fragment.tags = list(run.tags)
            fragment.notes = run.notes
            for item in run.config.update:
                fragment.config[_item_key(item)] = _json_value(item.value_json)
            if run.HasField("start_time"):
                seconds = run.start_time.seconds + run.start_time.nanos / 1e9
                fragment.start_time = datetime.fromtimestamp(seconds, UTC).isoformat()
        elif kind == "config":
            for item in record.config.update:
                fragment.config[_item_key(item)] = _json_value(item.value_json)
            for item in record.config.remove:
                fragment.config.pop(_item_key(item), None)
        elif kind == "summary":
            for item in record.summary.update:
                fragment.summary[_item_key(item)] = _json_value(item.value_json)
            for item in record.summary.remove:
                fragment.summary.pop(_item_key(item), None)
        elif kind == "history":
            step = None
            for item in record.history.item:
                if _item_key(item) == "_step":
                    step = _json_value(item.value_json)
            if not isinstance(step, int) and record.history.HasField("step"):
                step = record.history.step.num
            if isinstance(step, int):
                if fragment.first_step is None:
                    fragment.first_step = step
                fragment.last_step = max(step, fragment.last_step or step)
        elif kind == "preempting":
            fragment.preempting = True
        elif kind == "exit":
            exited = True
            fragment.exit_code = record.exit.exit_code
    fragment.config.pop("_wandb", None)
    if exited:
        if fragment.preempting:
            fragment.state = "preempted"
        else:
            fragment.state = "finished" if fragment.exit_code == 0 else "failed"
    return fragment


def merge_fragments(fragments: Iterable[Fragment]) -> list[OfflineRun]:
    """Group fragments by run id, each group ordered by start time (then folder order)."""
    by_id: dict[str, list[Fragment]] = {}
    for fragment in fragments:
        by_id.setdefault(fragment.run_id, []).append(fragment)
    runs = []
    for run_id, group in by_id.items():
        group.sort(key=lambda f: (f.start_time or "", _folder_order(Path(f.path))))
        runs.append(OfflineRun(run_id=run_id, fragments=group))
    return runs


def read_offline_run(path: str | os.PathLike) -> RunRecord:
    """One run as a `RunRecord`: `path` is an offline-run folder, its `.wandb` file, or a job
    directory (whose fragments are merged; it must hold exactly one run id)."""
    path = Path(path)
    folders = find_fragments(path) if (path / WANDB_DIR).is_dir() else [path]
    if not folders:
        raise OfflineRunError(f"{path} holds no W&B offline run.")
    runs = merge_fragments(read_fragment(folder) for folder in folders)
    if len(runs) != 1:
        ids = ", ".join(sorted(r.run_id for r in runs))
        raise OfflineRunError(f"{path} holds several W&B runs ({ids}); name one folder.")
    return runs[0].record


def scan_offline_runs(
    workspace: str | os.PathLike,
    project: str | None = None,
    group_prefix: str = "",
    *,
    problems: list[str] | None = None,
) -> list[OfflineRun]:
    """Every offline run under a signac workspace, fragments merged, filtered by project (exact)
    and group prefix, sorted by group then run id.

    A fragment that cannot be decoded is left out; its reason is appended to `problems`.
    """
    fragments = []
    for folder in iter_fragment_folders(workspace):
        try:
            fragments.append(read_fragment(folder))
        except OfflineRunError as exc:
            if problems is not None:
                problems.append(str(exc))
    runs = [
        run
        for run in merge_fragments(fragments)
        if (project is None or run.fragments[-1].project == project)
        and run.fragments[-1].group.startswith(group_prefix)
    ]
    return sorted(runs, key=lambda r: (r.fragments[-1].group, r.run_id))


def list_offline_runs(
    workspace: str | os.PathLike, project: str | None = None, group_prefix: str = ""
) -> list[RunRecord]:
    """`TrackerAdapter.list_runs` for offline W&B runs: one `RunRecord` per run id."""
    return [run.record for run in scan_offline_runs(workspace, project, group_prefix)]


__all__ = [
    "Fragment",
    "OfflineRun",
    "OfflineRunError",
    "find_fragments",
    "iter_fragment_folders",
    "list_offline_runs",
    "merge_fragments",
    "read_fragment",
    "read_offline_run",
    "read_payloads",
    "scan_offline_runs",
]
