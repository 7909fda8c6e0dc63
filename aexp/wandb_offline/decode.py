"""Read W&B offline runs from their local folders, without network and without `wandb sync`.

An offline run is written to `<job workspace>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>[-N]/`,
and everything W&B knows about it is in that folder's transaction log `run-<id>.wandb`. W&B
cannot resume an offline run, so every execution attempt leaves one more folder ("fragment")
with the same run id; `list_offline_runs` merges the fragments of one id into one `RunRecord`.

The log's framing is aexp.wandb_offline.framing; each payload is one protobuf
`wandb.proto.wandb_internal_pb2.Record` (wandb 0.31 ships no reader of its own in Python, so the
protobuf is decoded here with wandb's own class). A run still being written, or one whose process
was killed, ends in a torn record: reading stops there and what came before is kept.

Finding fragments needs only the file system; decoding them needs the wandb package (its protobuf
classes), imported on first use.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aexp.errors import TrackerInitError
from aexp.trackers.base import RunRecord
from aexp.wandb_offline.folders import (
    SYNCED_SUFFIX,
    WANDB_DIR,
    find_fragments,
    folder_order,
    fragment_log,
    iter_fragment_folders,
)
from aexp.wandb_offline.framing import OfflineRunError, read_payloads


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
    steps: list[int] = field(default_factory=list)  # the step of every history row, in order
    has_run: bool = False  # a `run` record was read (without one `wandb sync` refuses the log)
    exited: bool = False  # an `exit` record was read (the attempt closed the run)
    start_seconds: float | None = None  # the run record's start time, seconds since the epoch
    staged: list[str] = field(default_factory=list)  # where its artifacts' files were staged
    artifacts: list[str] = field(default_factory=list)  # the names of the artifacts it logged


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


# -- decoding ---------------------------------------------------------------------------------
_record_class: Any = None


def record_class() -> Any:
    """wandb's protobuf class `Record` (wandb.proto.wandb_internal_pb2), loaded once.

    `import wandb` costs most of a second (its settings are pydantic models), and decoding needs
    only the generated protobuf modules. Unless wandb is imported already, those are loaded
    under a stand-in of the `wandb` package that is never executed, and every `wandb.*` entry
    is taken out of `sys.modules` again, so that a real `import wandb` later in the process is
    complete (the protobuf classes are shared: protobuf keeps one per descriptor). Raises
    TrackerInitError when wandb is not installed.
    """
    global _record_class
    if _record_class is None:
        try:
            _record_class = _load_record_class()
        except ImportError:
            raise TrackerInitError(
                "reading W&B offline runs needs the wandb package; install it with: "
                "pip install 'agentic-experiments[wandb]'."
            ) from None
    return _record_class


def _load_record_class() -> Any:
    if "wandb" not in sys.modules:
        spec = importlib.util.find_spec("wandb")
        if spec is None:
            raise ImportError("wandb")
        sys.modules["wandb"] = importlib.util.module_from_spec(spec)  # not executed
        try:
            from wandb.proto import wandb_internal_pb2

            return wandb_internal_pb2.Record
        except Exception:  # wandb's layout changed: import it the ordinary way below
            pass
        finally:
            for name in [n for n in sys.modules if n == "wandb" or n.startswith("wandb.")]:
                del sys.modules[name]
    from wandb.proto import wandb_internal_pb2

    return wandb_internal_pb2.Record


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
    Record = record_class()
    try:
        payloads, torn = read_payloads(log)
    except OSError as exc:
        raise OfflineRunError(f"cannot read {log}: {exc.strerror or exc}.") from None
    run_id = log.name[len("run-") : -len(".wandb")]
    fragment = Fragment(path=str(folder), run_id=run_id, torn=torn)
    fragment.synced = log.with_name(log.name + SYNCED_SUFFIX).exists()
    exited = False
    for payload in payloads:
        record = Record()
        try:
            record.ParseFromString(payload)
        except Exception:  # protobuf's DecodeError: a damaged payload with a valid crc
            fragment.torn = True
            break
        kind = record.WhichOneof("record_type")
        if kind == "run":
            fragment.has_run = True
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
                fragment.start_seconds = seconds
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
                fragment.steps.append(step)
                if fragment.first_step is None:
                    fragment.first_step = step
                fragment.last_step = max(step, fragment.last_step or step)
        elif kind == "artifact":
            fragment.artifacts.append(record.artifact.name)
            fragment.staged.extend(e.local_path for e in record.artifact.manifest.contents)
        elif kind == "preempting":
            fragment.preempting = True
        elif kind == "exit":
            exited = True
            fragment.exit_code = record.exit.exit_code
    fragment.config.pop("_wandb", None)
    fragment.exited = exited
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
        group.sort(key=lambda f: (f.start_time or "", folder_order(Path(f.path))))
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
