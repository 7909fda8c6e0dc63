"""The MLflow backend (optional extra: `pip install 'agentic-experiments[mlflow]'`).

In aexp's workflow MLflow is fed by replay (`feed = "replay"`): compute nodes write only the
run's journal and never import mlflow; a login node replays each journal into the tracking URI
(`replay`, see aexp/trackers/mlflow/replay.py). The five contract methods also work live, for a
script that logs straight to a tracking server or a local sqlite file; a run logged live and the
same run replayed look alike (aexp/trackers/mlflow/mapping.py says how runs map to MLflow).

One aexp run is one MLflow run, in the experiment named after the tracker project, tagged
`aexp.run_id=<run id>` (how it is found again from any process) and named by the run id.
"""

from __future__ import annotations

import os
import string
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aexp.errors import TrackerInitError
from aexp.trackers.base import (
    ReplayResult,
    RunHandle,
    RunRecord,
    TrackerAdapter,
    TrackerUsageError,
    clean_metrics,
)
from aexp.trackers.mlflow import limits
from aexp.trackers.mlflow.client import (
    INSTALL_HINT,
    Store,
    missing_sdk,
    sdk_installed,
    store_for,
    translated,
)
from aexp.trackers.mlflow.mapping import (
    EXIT_CODE_TAG,
    GROUP_TAG,
    RECORD_STATES,
    RUN_ID_TAG,
    RUNNING,
    STRING_PREFIX,
    end_status,
    labels_of,
    metric_value,
    run_tags,
)
from aexp.trackers.mlflow.sending import check_run_id, send_entries, send_params, upload
from aexp.trackers.mlflow.timeouts import request_limits
from aexp.trackers.mlflow.uri import ENV_VAR, absolute_sqlite, run_page

if TYPE_CHECKING:
    from aexp.journal import Journal
    from aexp.settings import Settings

_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id() -> str:
    """8 random characters of [a-z0-9], the shape of W&B's run ids (one id for every backend)."""
    import secrets  # here: it imports hashlib and random, which most processes never need

    return "".join(secrets.choice(_ALPHABET) for _ in range(8))


class MlflowAdapter(TrackerAdapter):
    """Tracker backend for MLflow.

    `tracking_uri`: where runs go; None: the environment's MLFLOW_TRACKING_URI, else MLflow's
    own default, `sqlite:///mlflow.db` in the current directory. The workflow passes
    `resolve_tracking_uri(project_root, <[mlflow] tracking_uri of signac.rc>)`. A relative sqlite
    path is made absolute at construction. `artifact_root`: where new experiments keep run files
    when the store does not decide (default: `mlartifacts/` beside a sqlite database).

    Construction needs no mlflow: a compute node binds and runs a job whose backends include
    mlflow without having it installed (it only writes the journal). The first method that
    talks to MLflow imports it, or raises TrackerInitError with the install hint. `offline=True`
    has no meaning here: runs are logged as given.
    """

    name = "mlflow"
    feed = "replay"

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_root: str | None = None,
        timeout: float | None = None,
    ) -> None:
        uri = (tracking_uri or "").strip() or (os.environ.get(ENV_VAR) or "").strip()
        self.tracking_uri = absolute_sqlite(uri or "sqlite:///mlflow.db", os.getcwd())
        self.artifact_root = artifact_root
        self.timeout = timeout  # seconds a replay may take: bounds MLflow's own HTTP retries

    @classmethod
    def from_settings(
        cls, settings: Settings | None, root: str | os.PathLike | None, **options: Any
    ) -> MlflowAdapter:
        """The adapter for the project at `root`: the tracking URI as `resolve_tracking_uri`
        finds it (MLFLOW_TRACKING_URI, else `[mlflow] tracking_uri`, else `mlflow.db` at the
        root). The URI a binding stores is informational (its password removed): not used."""
        from aexp.trackers.mlflow.uri import resolve_tracking_uri

        configured = settings.mlflow_tracking_uri if settings is not None else None
        return cls(
            tracking_uri=resolve_tracking_uri(root or os.getcwd(), configured),
            timeout=settings.sync_timeout if settings is not None else None,
        )

    @classmethod
    def sync_blocker(cls) -> str | None:
        """Runs are replayed into MLflow wherever its package is installed (no server is
        contacted to decide)."""
        return None if sdk_installed() else f"the mlflow package is not installed; {INSTALL_HINT}"

    def _store(self) -> Store:
        if not sdk_installed():
            raise missing_sdk()
        return store_for(self.tracking_uri, self.artifact_root, timeout=self.timeout)

    # -- checks -------------------------------------------------------------------------------
    def check_run(
        self, *, project: str, group: str, tags: Sequence[str], config: Mapping[str, Any]
    ) -> None:
        """Refuse what MLflow (3.17) would refuse or cut later: an empty or over-long experiment
        name, a param name it does not accept, a param value over 6,000 characters, a group or
        label over 8,000 characters (tag values). TrackerUsageError, one sentence."""
        limits.check_experiment_name(project)
        limits.check_tag_value(f"the group starting {group[:40]!r}", group)
        for label in tags:
            limits.check_tag_value(f"the tag starting {label[:40]!r}", label)
        limits.check_params(limits.flatten_config(config))

    def run_url(self, *, project: str, run_id: str, offline: bool) -> str | None:
        """None: MLflow chooses its run id when the run is created, and the page needs it."""
        return None

    # -- the contract -------------------------------------------------------------------------
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
        """Create the MLflow run (status RUNNING) with its tags and params; return its handle.

        With `run_id` given and a run already tagged with it in the experiment (a retried
        bind), that run is returned instead of a second one. `handle.extra`: `mlflow_run_id`,
        `experiment_id`, `tracking_uri` (password removed) and the live client as `_client`.
        Raises TrackerUsageError (nothing written) for input MLflow would refuse,
        TrackerInitError when MLflow is missing or the store cannot be used.
        """
        config = dict(config or {})
        self.check_run(project=project, group=group, tags=tags, config=config)
        if notes:
            limits.check_tag_value("the notes", notes)
        params = limits.flatten_config(config)
        given = run_id is not None
        run_id = run_id or new_run_id()
        check_run_id(run_id)
        store = self._store()
        experiment_id = store.experiment_id(project)
        # A given id may already have its run (a bind retried after a crash): one run per id.
        run = store.find_run(experiment_id, run_id) if given else None
        with translated(f"create run {run_id} in experiment {project!r}"):
            if run is None:
                run = store.client.create_run(
                    experiment_id,
                    tags=run_tags(
                        run_id=run_id, group=group, labels=tags, config=config, notes=notes
                    ),
                    run_name=run_id,
                )
            send_params(store, run.info.run_id, params, dict(run.data.params))
        return self._handle(store, run_id, project, group, experiment_id, run.info.run_id)

    def _handle(
        self, store: Store, run_id: str, project: str, group: str, experiment_id: str, mlid: str
    ) -> RunHandle:
        return RunHandle(
            id=run_id,
            url=run_page(store.uri, experiment_id, mlid),
            project=project,
            group=group,
            extra={
                "mlflow_run_id": mlid,
                "experiment_id": experiment_id,
                "tracking_uri": store.shown_uri,
                "_client": store.client,
                "_next_step": 0,
            },
        )

    def resume_run(
        self, handle: RunHandle, *, workdir: str | Path | None = None, attempt: int = 1
    ) -> RunHandle:
        """Find the run again (by `mlflow_run_id`, else by the `aexp.run_id` tag in the
        project's experiment) and set it RUNNING. TrackerInitError when it cannot be found."""
        store = self._store()
        experiment_id = store.experiment_id(handle.project, create=False)
        run = None
        if experiment_id is not None:
            run = store.run_for(experiment_id, handle.id, handle.extra.get("mlflow_run_id"))
        if run is None:
            raise TrackerInitError(
                f"no MLflow run tagged {RUN_ID_TAG}={handle.id} in experiment "
                f"{handle.project!r} at {store.shown_uri}; bind the job again to create one."
            )
        with translated(f"resume run {handle.id}"):
            store.client.update_run(run.info.run_id, status=RUNNING)
        resumed = self._handle(
            store, handle.id, handle.project, handle.group, run.info.experiment_id, run.info.run_id
        )
        return resumed

    def _open(self, handle: RunHandle) -> tuple[Any, str]:
        client = handle.extra.get("_client")
        mlid = handle.extra.get("mlflow_run_id")
        if client is None or not mlid:
            raise TrackerUsageError(
                f"MLflow run {handle.id} is not open in this process; resume it first."
            )
        return client, mlid

    def log(
        self, handle: RunHandle, metrics: Mapping[str, Any], *, step: int | None = None
    ) -> None:
        """Log one row with `log_batch` at `step` (None: one after the last step of this handle,
        from 0). Numbers (bools as 0/1, NaN/inf kept) become metrics; a string becomes the tag
        `aexp.last.<key>`; None is skipped. Names MLflow refuses are mapped by `mlflow_name`."""
        row = clean_metrics(metrics)
        client, mlid = self._open(handle)
        if step is None:
            step = handle.extra.get("_next_step", 0)
        handle.extra["_next_step"] = step + 1
        sdk = self._store().sdk
        now = int(time.time() * 1000)
        entries, tags = [], []
        for key, value in row.items():
            value = metric_value(value)
            if value is None:
                continue
            if isinstance(value, str):
                name = limits.mlflow_name(STRING_PREFIX + key)
                tags.append(sdk.RunTag(name, limits.tag_value(value)))
            else:
                entries.append(sdk.Metric(limits.mlflow_name(key), value, now, step))
        with translated(f"log to run {handle.id}"):
            send_entries(client, mlid, entries, tags)

    def log_artifact(self, handle: RunHandle, name: str, path: str | Path) -> None:
        """Upload the file or directory at `path` under the artifact path `name`.
        TrackerUsageError (nothing recorded) when `path` does not exist."""
        path = Path(path)
        if not path.exists():
            raise TrackerUsageError(f"artifact {name!r}: {path} does not exist.")
        client, mlid = self._open(handle)
        with translated(f"upload artifact {name!r} of run {handle.id}"):
            upload(client, mlid, name, path)

    def finish(self, handle: RunHandle, *, exit_code: int = 0, preempted: bool = False) -> None:
        """End the run: FINISHED (exit 0), KILLED (preempted), FAILED (other exit codes); the
        exit code is kept as the tag `aexp.exit_code`."""
        client, mlid = self._open(handle)
        status = end_status(finished=True, exit_code=exit_code, preempted=preempted)
        sdk = self._store().sdk
        with translated(f"finish run {handle.id}"):
            client.log_batch(
                mlid, tags=[sdk.RunTag(EXIT_CODE_TAG, str(exit_code))], synchronous=True
            )
            client.set_terminated(mlid, status)
        handle.extra.pop("_client", None)

    def list_runs(self, *, project: str, group_prefix: str = "") -> list[RunRecord]:
        """aexp's runs in experiment `project` whose group starts with `group_prefix` (runs
        without an `aexp.run_id` tag are not aexp's and are left out). TrackerInitError when
        the store cannot be reached."""
        store = self._store()
        experiment_id = store.experiment_id(project, create=False)
        if experiment_id is None:
            return []
        # LIKE narrows the search on the server; "_" and "%" are wildcards there (they only
        # widen it), a quote or backslash would break the filter: then every aexp run is fetched.
        # The prefix is checked exactly here.
        pattern = "" if "'" in group_prefix or "\\" in group_prefix else group_prefix
        records: list[RunRecord] = []
        token = None
        with translated(f"list runs of experiment {project!r}"):
            while True:
                page = store.client.search_runs(
                    [experiment_id],
                    filter_string=f"tags.`{GROUP_TAG}` LIKE '{pattern}%'",
                    max_results=1000,
                    page_token=token,
                )
                for run in page:
                    tags = run.data.tags
                    if RUN_ID_TAG in tags and tags.get(GROUP_TAG, "").startswith(group_prefix):
                        records.append(_record(run, project, store.uri))
                token = page.token
                if not token:
                    break
        return sorted(records, key=lambda r: (r.group, r.id))

    def replay(self, journal: Journal, *, job_path: str, state: Mapping[str, Any]) -> ReplayResult:
        """Bring the MLflow copy of the run up to `journal`; see aexp/trackers/mlflow/replay.py.
        MLflow's HTTP retries are bounded by the adapter's `timeout` (timeouts.py)."""
        from aexp.trackers.mlflow.replay import replay_journal

        with request_limits(self.timeout):
            return replay_journal(self, journal, job_path=job_path, state=state)

    def remote_state(
        self, journal: Journal, *, job_path: str, state: Mapping[str, Any]
    ) -> ReplayResult | None:
        """What MLflow holds of the run of `journal`: the run found by its `aexp.run_id` tag, its
        metric history, end status and artifact markers (aexp/trackers/mlflow/held.py)."""
        from aexp.trackers.mlflow.held import held_by_server

        with request_limits(self.timeout):
            return held_by_server(self, journal, job_path=job_path, state=state)


def _record(run: Any, project: str, uri: str) -> RunRecord:
    tags = run.data.tags
    code = tags.get(EXIT_CODE_TAG)
    return RunRecord(
        id=tags.get(RUN_ID_TAG) or run.info.run_id,
        project=project,
        group=tags.get(GROUP_TAG, ""),
        state=RECORD_STATES.get(run.info.status, "unknown"),
        url=run_page(uri, run.info.experiment_id, run.info.run_id),
        tags=labels_of(tags),
        config=dict(run.data.params),
        last_metrics=dict(run.data.metrics),
        exit_code=int(code) if code and code.lstrip("-").isdigit() else None,
    )


__all__ = ["MlflowAdapter", "new_run_id"]
