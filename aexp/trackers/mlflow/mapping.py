"""How an aexp run looks in MLflow: its tags, its params, its metric values and its status.

Pure data, no MLflow import: the adapter (live) and the replay (from the journal) both build
their requests from these functions, so a run logged live and the same run replayed from its
journal look the same in MLflow.

Tags of every run (MLflow tags are key/value strings; there are no bare labels):

    aexp.run_id        our run id (8 characters); how a run is found again
    mlflow.runName     the run id too (what MLflow's UI shows as the run's name)
    aexp.group         "<hypothesis>/<experiment>/<condition>"
    aexp.hypothesis    } the group's parts, each its own tag so that
    aexp.experiment    } `tags.aexp.condition = 'full'` filters in the UI and in search_runs
    aexp.condition     }
    aexp.job_id        the signac job id (from the config), when known
    aexp.actor.kind    } who started the run: "person" or "agent", user@host or the agent's
    aexp.actor.id      } name, its session id (e.g. Claude Code's), the tool used; from the
    aexp.actor.session_id } config (aexp.agent.actor.config_of), when it names them
    aexp.actor.tool    }
    aexp.tag.<label>   one per label of the run (W&B's tags), value: the label itself
    mlflow.note.content  the notes, when given (MLflow's UI shows it as the run's description)
    aexp.exit_code     the exit code of the last finished attempt
    aexp.last.<key>    the last string value logged under metric <key> (MLflow metrics are numbers)

and, written by replay only, `aexp.replay.rows` (history rows the run holds) and
`aexp.artifact.<name>` (which logged artifact was uploaded). Keys are passed through
`mlflow_name`, so a label with characters MLflow refuses in names still gets a tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aexp.agent.actor import ACTOR_PREFIX
from aexp.trackers.mlflow.limits import mlflow_name, tag_value

if TYPE_CHECKING:
    from aexp.journal import Artifact, Journal, Row

RUN_ID_TAG = "aexp.run_id"
GROUP_TAG = "aexp.group"
RUN_NAME_TAG = "mlflow.runName"  # mlflow.utils.mlflow_tags.MLFLOW_RUN_NAME
NOTE_TAG = "mlflow.note.content"  # mlflow.utils.mlflow_tags.MLFLOW_RUN_NOTE
EXIT_CODE_TAG = "aexp.exit_code"
PROGRESS_TAG = "aexp.replay.rows"
LABEL_PREFIX = "aexp.tag."
STRING_PREFIX = "aexp.last."
ARTIFACT_PREFIX = "aexp.artifact."
PART_TAGS = ("aexp.hypothesis", "aexp.experiment", "aexp.condition")

# MLflow run statuses (mlflow.entities.RunStatus) and aexp's RunRecord states.
RUNNING, SCHEDULED, FINISHED = "RUNNING", "SCHEDULED", "FINISHED"
FAILED, KILLED = "FAILED", "KILLED"
TERMINAL = frozenset({FINISHED, FAILED, KILLED})
RECORD_STATES = {
    RUNNING: "running",
    SCHEDULED: "bound",
    FINISHED: "finished",
    FAILED: "failed",
    KILLED: "preempted",
}


def run_tags(
    *,
    run_id: str,
    group: str,
    labels: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
    notes: str | None = None,
) -> dict[str, str]:
    """Every tag a run is created with (see the module docstring), values cut to MLflow's limit.

    `group` is split on its first two "/" into hypothesis, experiment and condition (hypothesis
    and experiment ids hold no "/"; a condition may). `config["job_id"]` becomes `aexp.job_id`,
    and the config's `aexp.actor.*` keys become tags of the same names.
    """
    tags = {RUN_ID_TAG: run_id, RUN_NAME_TAG: run_id, GROUP_TAG: tag_value(group)}
    parts = group.split("/", 2) if group else []
    if len(parts) == 3:
        tags.update(zip(PART_TAGS, (tag_value(p) for p in parts), strict=True))
    job_id = (config or {}).get("job_id")
    if isinstance(job_id, str) and job_id:
        tags["aexp.job_id"] = tag_value(job_id)
    for key, value in (config or {}).items():
        if key.startswith(ACTOR_PREFIX) and isinstance(value, str) and value:
            tags[key] = tag_value(value)
    for label in labels:
        tags[mlflow_name(LABEL_PREFIX + label)] = tag_value(label)
    if notes:
        tags[NOTE_TAG] = tag_value(notes)
    return tags


def labels_of(tags: Mapping[str, str]) -> list[str]:
    """The run's labels read back from its tags (sorted: MLflow keeps no order)."""
    return sorted(value for key, value in tags.items() if key.startswith(LABEL_PREFIX))


def metric_value(value: Any) -> float | str | None:
    """A journal/logged value as MLflow takes it: a float, a string (recorded as the tag
    `aexp.last.<key>`), or None (skipped: no value to record).

    Booleans become 0.0/1.0. NaN and +/-inf are kept: MLflow accepts them; its SQL stores keep NaN
    and store +/-inf as +/-1.7976931348623157e308 (sqlalchemy_store.sanitize_metric_value), which
    is what reading back returns. Integers become floats (MLflow metrics are doubles, so integers
    beyond 2**53 lose precision).
    """
    kind = type(value)
    if kind is float:
        return value
    if kind is int or kind is bool:
        return float(value)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return None


def ms(stamp: str, default: int = 0) -> int:
    """An ISO-8601 journal timestamp as MLflow's epoch milliseconds (`default` if unreadable)."""
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except (TypeError, ValueError):
        return default


def end_status(*, finished: bool, exit_code: int | None, preempted: bool) -> str:
    """MLflow's status for an attempt: FINISHED (exit 0), KILLED (preempted), FAILED (any other
    exit code), RUNNING (the attempt has not finished, or its process died without finishing)."""
    if not finished:
        return RUNNING
    if preempted:
        return KILLED
    return FINISHED if exit_code == 0 else FAILED


# -- what replays and the store's own account compare: steps, end, artifact markers ----------
def axis(history: Sequence[Row], default_ms: int) -> tuple[list[int], list[int]]:
    """Step and epoch-millisecond timestamp of every history row.

    A row without a step gets the one after the previous row's (0 for the first), as a
    tracker's automatic step would; an unreadable timestamp takes the previous row's.
    """
    steps: list[int] = []
    stamps: list[int] = []
    step, stamp = -1, default_ms
    for row in history:
        step = row.step if row.step is not None else step + 1
        stamp = ms(row.timestamp, stamp)
        steps.append(step)
        stamps.append(stamp)
    return steps, stamps


def end_of(journal: Journal) -> tuple[str, int | None, str | None]:
    """The run's status from the journal's last attempt (SCHEDULED before any attempt), its end
    time (epoch ms, None while running) and exit code (a string, None while running)."""
    last = journal.last_attempt
    if last is None:
        return SCHEDULED, None, None
    status = end_status(finished=last.finished, exit_code=last.exit_code, preempted=last.preempted)
    if status not in TERMINAL:
        return status, None, None
    return status, ms(last.ended_at or "", 0) or None, str(last.exit_code or 0)


def artifact_marker(artifact: Artifact) -> str:
    return f"{artifact.size_bytes} {artifact.timestamp}"


__all__ = [
    "ARTIFACT_PREFIX",
    "EXIT_CODE_TAG",
    "FAILED",
    "FINISHED",
    "GROUP_TAG",
    "KILLED",
    "LABEL_PREFIX",
    "NOTE_TAG",
    "PART_TAGS",
    "PROGRESS_TAG",
    "RECORD_STATES",
    "RUNNING",
    "RUN_ID_TAG",
    "RUN_NAME_TAG",
    "SCHEDULED",
    "STRING_PREFIX",
    "TERMINAL",
    "artifact_marker",
    "axis",
    "end_of",
    "end_status",
    "labels_of",
    "metric_value",
    "ms",
    "run_tags",
]
