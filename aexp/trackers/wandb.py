"""The Weights & Biases backend (optional extra: `pip install 'agentic-experiments[wandb]'`).

wandb is imported when the adapter is constructed, never when aexp is imported. Binding a job
creates no local files: the W&B run (an offline folder, or an online run) comes into being the
first time an execution attempt resumes it. Offline, W&B cannot continue a run, so every attempt
writes one folder ("fragment") `<job>/wandb/offline-run-<time>-<id>/` with the same run id;
`wandb sync` stitches fragments of one id in start-time order, and the caller passes explicit steps
so the step axis continues across them.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aexp.trackers.base import (
    RunHandle,
    RunRecord,
    TrackerAdapter,
    TrackerInitError,
    TrackerUsageError,
    clean_metrics,
)
from aexp.trackers.wandb_once import deliver_requirements, init_settings
from aexp.validate import TAG_MAX, shorten, validate_project_name

if TYPE_CHECKING:
    from aexp.journal import Journal
    from aexp.settings import Settings

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


def _reason(exc: BaseException) -> str:
    """W&B's error in one line: pydantic's validation errors put the field and the rule on
    the lines after "1 validation error for Settings", so those are joined in."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "validation error" in lines[0] and len(lines) > 1:
        return "; ".join(lines[:3])[:500]
    return lines[0][:500]


def _new_run_id() -> str:
    # W&B's own ids are 8 characters of [a-z0-9]; any unique string of that shape is accepted.
    import secrets  # here: with hashlib it costs ~5 ms, and most processes never bind a run

    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


class WandbAdapter(TrackerAdapter):
    """Tracker backend for Weights & Biases; `entity` is the team or user (optional)."""

    name = "wandb"
    sync_needs = "W&B credentials (wandb login)"

    def __init__(self, entity: str | None = None) -> None:
        self.wandb = _import_wandb()
        self.entity = entity or None

    @classmethod
    def from_settings(
        cls, settings: Settings | None, root: str | os.PathLike | None, **options: Any
    ) -> WandbAdapter:
        entity = options.get("entity", settings.entity if settings is not None else None)
        return cls(entity=entity)

    def options(self) -> dict[str, Any]:
        return {"entity": self.entity} if self.entity else {}

    @classmethod
    def check_run(
        cls, *, project: str, group: str, tags: Sequence[str], config: Mapping[str, Any]
    ) -> None:
        validate_project_name(project)

    def run_url(self, *, project: str, run_id: str, offline: bool) -> str | None:
        # Offline runs get their URL when synced (the server says where they landed).
        if offline or not self.entity:
            return None
        base = os.environ.get("WANDB_APP_URL", DEFAULT_APP_URL).rstrip("/")
        return f"{base}/{self.entity}/{project}/runs/{run_id}"

    def init_run(
        self,
        *,
        project: str,
        group: str,
        tags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        notes: str | None = None,
        offline: bool = False,
        workdir: str | Path | None = None,
        run_id: str | None = None,
    ) -> RunHandle:
        """Start a W&B run with `wandb.init` (offline: `mode="offline"`) and return its handle.

        `dir=workdir` (default: the current directory) keeps every W&B file of the run there;
        `run_id` (default: a new id) is the W&B run id. Tags longer than W&B's 64 characters are
        shortened as aexp.validate.shorten does. Raises TrackerInitError when W&B refuses.
        """
        handle = RunHandle(
            id=run_id or _new_run_id(),
            url=None,
            project=project,
            group=group,
            extra={
                "entity": self.entity,
                "tags": [shorten(str(tag), TAG_MAX) for tag in tags],
                "notes": notes,
                "offline": bool(offline),
                "_config": dict(config or {}),
            },
        )
        return self.resume_run(handle, workdir=workdir or os.getcwd())

    def resume_run(
        self, handle: RunHandle, *, workdir: str | Path | None = None, attempt: int = 1
    ) -> RunHandle:
        """Open run `handle.id` in this process (`wandb.init(id=..., resume="allow")`).

        Offline, W&B cannot continue a run: each call writes a new folder ("fragment") under
        `<workdir>/wandb/` with the same run id; `wandb sync` uploads them in order.
        """
        workdir = workdir or os.getcwd()
        extra = handle.persistent_extra()
        offline = bool(extra.get("offline", True))
        keep_wandb_local(workdir, offline=offline)
        try:
            # What W&B would collect anew for every run is collected once per process and
            # handed to the run (aexp/trackers/wandb_once.py): the same files reach the server.
            once, save_requirements = init_settings(self.wandb, workdir)
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
                    silent=True, console="off", x_disable_stats=True, save_code=False, **once
                ),
            )
        except Exception as exc:  # wandb raises many types; the caller needs one
            raise TrackerInitError(f"W&B refused to start run {handle.id}: {_reason(exc)}") from exc
        extra["_run"] = run
        if save_requirements:
            deliver_requirements(run)
        # What earlier attempts logged and this fragment must carry too: W&B keeps the summary
        # of a run's last fragment only, and rows a killed attempt lost (WandbAdapter.repair).
        summary = handle.extra.get("_summary")
        if summary:
            run.summary.update(summary)
        for step, metrics in handle.extra.get("_backfill") or ():
            run.log(metrics, step=step)
        opened = RunHandle(
            id=handle.id,
            # Offline runs have no URL (and W&B warns when asked for one).
            url=handle.url if offline else (run.url or handle.url),
            project=handle.project,
            group=handle.group,
            extra=extra,
        )
        for name, path in handle.extra.get("_backfill_artifacts") or ():
            if Path(path).exists():
                self.log_artifact(opened, name, path)
        return opened

    def repair(
        self, handle: RunHandle, journal: Journal, *, workdir: str | Path | None = None
    ) -> int:
        """Mend the run's offline fragments and put back what the journal holds and they lost:
        the rows go into the next `resume_run` of `handle` (aexp/trackers/wandb_repair.py)."""
        from aexp.trackers.wandb_repair import repair_before_attempt

        return repair_before_attempt(self, handle, journal, workdir or os.getcwd())

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
        self._run(handle).log(clean_metrics(metrics), step=step)

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

    def list_runs(self, *, project: str, group_prefix: str = "") -> list[RunRecord]:
        """Query W&B's API (needs network and credentials) for runs whose group matches."""
        try:
            api = self.wandb.Api(timeout=30)
            path = f"{self.entity}/{project}" if self.entity else project
            runs = api.runs(path, filters={"group": {"$regex": "^" + re.escape(group_prefix)}})
            records = [_record_from_api(run, project) for run in runs]
        except Exception as exc:
            raise TrackerInitError(f"cannot list W&B runs of {project!r}: {_reason(exc)}") from exc
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
