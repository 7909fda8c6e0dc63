"""The Weights & Biases backend (optional extra: `pip install 'agentic-experiments[wandb]'`).

wandb is imported when the adapter is constructed, never when aexp is imported. Binding a job
creates no local files: the W&B run (an offline folder, or an online run) comes into being the
first time an execution attempt resumes it. Offline, W&B cannot continue a run, so every attempt
writes one folder ("fragment") `<job>/wandb/offline-run-<time>-<id>/` with the same run id;
`wandb sync` stitches fragments of one id in start-time order, and the caller passes explicit steps
so the step axis continues across them.
"""

from __future__ import annotations

import mmap
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aexp.trackers.base import (
    RunHandle,
    RunRecord,
    TrackerAdapter,
    TrackerInitError,
    TrackerUsageError,
    clean_metrics,
)

INSTALL_HINT = "install it with: pip install 'agentic-experiments[wandb]'"
DEFAULT_APP_URL = "https://wandb.ai"


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise TrackerInitError(
            f"the wandb backend needs the wandb package; {INSTALL_HINT}."
        ) from None
    return wandb


def keep_wandb_local(workdir: str | Path, *, offline: bool) -> None:
    """Point W&B's cache, data and artifact-staging directories into `workdir/wandb/`.

    W&B reads these variables when it needs the directories, so setting them before each run
    keeps a process that works through many jobs from spilling state into HOME. Offline runs also
    switch W&B's error reporting off: offline means nothing leaves the machine.
    """
    local = Path(workdir) / "wandb"
    os.environ["WANDB_CACHE_DIR"] = str(local / ".cache")
    os.environ["WANDB_DATA_DIR"] = str(local / ".data")
    os.environ["WANDB_ARTIFACT_DIR"] = str(local / ".artifacts")
    if offline:
        os.environ["WANDB_ERROR_REPORTING"] = "false"
        os.environ.setdefault("WANDB__DISABLE_STATS", "true")


def _new_run_id() -> str:
    # W&B's own ids are 8 characters of [a-z0-9]; any unique string of that shape is accepted.
    import secrets  # here: with hashlib it costs ~5 ms, and most processes never bind a run

    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


_WATERMARK_SIZE = 21  # "%20d\n"


def _open_watermark(path: Path) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size < _WATERMARK_SIZE:
            os.pwrite(fd, b"%20d\n" % -1, 0)
        return mmap.mmap(fd, _WATERMARK_SIZE)
    finally:
        os.close(fd)  # the map keeps the file


def _step_file(workdir: str | Path, run_id: str) -> Path:
    local = Path(workdir) / "wandb"
    local.mkdir(parents=True, exist_ok=True)
    return local / f"aexp-step-{run_id}"


class WandbAdapter(TrackerAdapter):
    """Tracker backend for Weights & Biases; `entity` is the team or user (optional)."""

    name = "wandb"

    def __init__(self, entity: str | None = None) -> None:
        self.wandb = _import_wandb()
        self.entity = entity or None

    def init_run(
        self,
        *,
        project: str,
        group: str,
        tags: list[str],
        config: Mapping[str, Any],
        notes: str | None,
        offline: bool,
        workdir: str | Path | None = None,
    ) -> RunHandle:
        run_id = _new_run_id()
        url = None
        if not offline and self.entity:
            base = os.environ.get("WANDB_APP_URL", DEFAULT_APP_URL).rstrip("/")
            url = f"{base}/{self.entity}/{project}/runs/{run_id}"
        # The config is not persisted (the caller re-derives it from the job on resume): signac
        # document keys may not contain dots, and W&B config keys often do.
        extra = {
            "entity": self.entity,
            "tags": list(tags),
            "notes": notes,
            "offline": bool(offline),
            "_config": dict(config),
        }
        return RunHandle(id=run_id, url=url, project=project, group=group, extra=extra)

    def resume_run(
        self, handle: RunHandle, *, workdir: str | Path | None = None, attempt: int = 1
    ) -> RunHandle:
        if workdir is None:
            raise TrackerUsageError("the wandb backend needs the job's workspace directory.")
        extra = handle.persistent_extra()
        offline = bool(extra.get("offline", True))
        keep_wandb_local(workdir, offline=offline)
        try:
            run = self.wandb.init(
                id=handle.id,
                project=handle.project,
                entity=extra.get("entity") or self.entity,
                group=handle.group,
                tags=extra.get("tags") or None,
                config=handle.extra.get("_config") or None,
                notes=extra.get("notes"),
                dir=str(workdir),
                mode="offline" if offline else "online",
                resume="allow",
                reinit="create_new",
                settings=self.wandb.Settings(
                    silent=True, console="off", x_disable_stats=True, save_code=False
                ),
            )
        except Exception as exc:  # wandb raises many types; the caller needs one
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrackerInitError(f"W&B refused to start run {handle.id}: {first}") from exc
        extra["_run"] = run
        # The offline log cannot be read back cheaply, so the highest step is mirrored into a
        # small watermark file, written through a shared memory map: a SIGKILL loses nothing
        # (the page belongs to the kernel) and a log call pays no system call for it.
        extra["_step_map"] = _open_watermark(_step_file(workdir, handle.id))
        return RunHandle(
            id=handle.id,
            # Offline runs have no URL (and W&B warns when asked for one).
            url=handle.url if offline else (run.url or handle.url),
            project=handle.project,
            group=handle.group,
            extra=extra,
        )

    def _run(self, handle: RunHandle) -> Any:
        run = handle.extra.get("_run")
        if run is None:
            raise TrackerUsageError(
                f"W&B run {handle.id} is not open in this process; resume it first."
            )
        return run

    def log(
        self, handle: RunHandle, metrics: Mapping[str, Any], *, step: int | None = None
    ) -> None:
        row = clean_metrics(metrics)
        # Watermark first: if the process dies in between, the next attempt leaves a gap in
        # the step axis rather than logging this step twice.
        watermark = handle.extra.get("_step_map")
        if step is not None and watermark is not None:
            watermark[0:_WATERMARK_SIZE] = b"%20d\n" % step
        self._run(handle).log(row, step=step)

    def last_step(self, handle: RunHandle, *, workdir: str | Path | None = None) -> int | None:
        if workdir is None:
            return None
        try:
            with open(_step_file(workdir, handle.id), "rb") as fh:
                return int(fh.read().strip() or b"-1")
        except (FileNotFoundError, ValueError):
            return None

    def log_artifact(self, handle: RunHandle, name: str, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise TrackerUsageError(f"artifact {name!r}: {path} does not exist.")
        artifact = self.wandb.Artifact(re.sub(r"[^\w.-]", "-", name), type="result")
        if path.is_dir():
            artifact.add_dir(str(path))
        else:
            artifact.add_file(str(path))
        self._run(handle).log_artifact(artifact)

    def finish(self, handle: RunHandle, *, exit_code: int = 0, preempted: bool = False) -> None:
        run = self._run(handle)
        if preempted:
            run.mark_preempting()
        run.finish(exit_code=exit_code)
        handle.extra.pop("_run", None)
        watermark = handle.extra.pop("_step_map", None)
        if watermark is not None:
            watermark.close()

    def list_runs(self, *, project: str, group_prefix: str = "") -> list[RunRecord]:
        """Query W&B's API (needs network and credentials) for runs whose group matches."""
        try:
            api = self.wandb.Api(timeout=30)
            path = f"{self.entity}/{project}" if self.entity else project
            runs = api.runs(path, filters={"group": {"$regex": "^" + re.escape(group_prefix)}})
            records = [_record_from_api(run, project) for run in runs]
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrackerInitError(f"cannot list W&B runs of {project!r}: {first}") from exc
        return records


_API_STATES = {
    "finished": "finished",
    "running": "running",
    "crashed": "failed",
    "failed": "failed",
    "preempted": "preempted",
    "preempting": "preempted",
}


def _record_from_api(run: Any, project: str) -> RunRecord:
    summary = dict(getattr(run, "summary", {}) or {})
    return RunRecord(
        id=run.id,
        project=project,
        group=run.group or "",
        state=_API_STATES.get(run.state, "unknown"),
        url=run.url,
        tags=list(run.tags or []),
        config=dict(run.config or {}),
        last_metrics={k: v for k, v in summary.items() if not k.startswith("_")},
    )
