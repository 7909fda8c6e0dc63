"""Every field the sync and the workflow's conditions read is checked by one schema
(aexp/schema.py): each one, wrong-typed, makes its job one line and `corrupt`, never a
traceback, never another job's duplicate. And one job's preparation failing in any way stays
with that job.

The fields are taken from the schema's own tables, so a field added there is tested here too;
the sweep is the template's real workflow (real wandb offline), synced with the real `wandb sync`
against the loopback W&B stand-in (tests/wandb_server.py).
"""

from __future__ import annotations

import copy as deepcopy
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import NEEDS_WANDB, PYTHON, hermetic_env, run_cmd
from syncing import (  # noqa: F401 (fixtures `copy`, `server`)
    MAKE_JOBS,
    assert_wandb_once,
    binding,
    copy_fixture,
    doc,
    make_sweep,
    server_fixture,
    sync,
    write_doc,
)
from wandb_server import FakeWandbServer

from aexp import schema
from aexp.trackers import ADAPTERS

pytestmark = NEEDS_WANDB  # the sweep is made by the real wandb client

FRAGMENT = "offline-run-20260101_000000-abcdefgh"
WRONG = (["a list"], {"an": "object"}, "text", 7, 1.5, True, None)


def full_document(base: dict[str, Any]) -> dict[str, Any]:
    """`base` (a real job document) with every structure the schema knows present and valid:
    a W&B part with a recorded fragment and one in flight, an MLflow part with its replay state,
    a previous run, the attempt."""
    document = deepcopy.deepcopy(base)
    tracker = document["tracker"]
    entry = {"first": 0, "last": 2, "rows": 3, "start": 1.0, "artifacts": ["result.json"]}
    wandb = tracker["backends"]["wandb"]
    wandb.update(
        options={"entity": "team", "id": None},
        extra={"entity": "team", "id": tracker["run_id"]},
        state={"fragments": {FRAGMENT: {**entry, "ended": True}}},
        inflight={
            "since": "2026-01-01T00:00:00+00:00",
            "host": "login-1",
            "pid": 1,
            "fragments": {FRAGMENT + "-1": entry},
            "rows": 3,
            "artifacts": 1,
        },
    )
    tracker["backends"]["mlflow"] = {
        "url": None,
        "synced_at": None,
        "error": None,
        "options": {},
        "extra": {},
        "state": {
            "mlflow_run_id": "abc",
            "experiment_id": "1",
            "tracking_uri": "sqlite:////x.db",
            "rows": 3,
            "status": "FINISHED",
            "missing_artifacts": [],
        },
    }
    tracker["previous_runs"] = [
        {
            "run_id": "old00000",
            "backend": "wandb",
            "state": "finished",
            "exit_code": 0,
            "attempts": 1,
            "last_step": 2,
            "summary": {},
            "url": None,
            "bound_at": None,
            "finished_at": None,
            "synced_at": None,
            "replaced_at": None,
            "backends": {"wandb": {"url": None, "synced_at": None}},
        }
    ]
    document["attempt"] = {
        "host": "node-1",
        "pid": 1,
        "slurm_job_id": None,
        "slurm_restart_count": "0",
    }
    return document


def field_paths(document: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], tuple[type, ...]]]:
    """(path into the document, allowed types) of every field the schema's tables name."""
    tracker = ("tracker",)
    parts = (*tracker, "backends")
    tables: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {k: (t, False) for k, t in schema.DOCUMENT_FIELDS.items()}),
        (("attempt",), schema.ATTEMPT_FIELDS),
        (tracker, schema.BINDING_FIELDS),
        ((*tracker, "previous_runs", 0), schema.PREVIOUS_RUN_FIELDS),
        ((*tracker, "previous_runs", 0, "backends", "wandb"), schema.PREVIOUS_PART_FIELDS),
        ((*parts, "wandb", "state", "fragments", FRAGMENT), schema.FRAGMENT_FIELDS),
        ((*parts, "wandb", "inflight"), schema.INFLIGHT_FIELDS),
        ((*parts, "wandb", "inflight", "fragments", FRAGMENT + "-1"), schema.FRAGMENT_FIELDS),
    ]
    for name in ("wandb", "mlflow"):
        tables.append(((*parts, name), schema.BACKEND_FIELDS))
        tables.append(((*parts, name, "state"), schema.STATE_FIELDS.get(name, {})))
        for key in ("options", "extra"):
            tables.append(((*parts, name, key), schema.OPTION_FIELDS.get(name, {})))
    for where, fields in tables:
        for key, (types, _) in fields.items():
            yield (*where, key), types


def broken(document: dict[str, Any], path: tuple[Any, ...], types: tuple[type, ...]) -> Any:
    """A copy of `document` with the field at `path` of a type it must not have; the value."""
    value = next(v for v in WRONG if schema._wrong(v, types))
    damaged = deepcopy.deepcopy(document)
    target = damaged
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return damaged, value


def problem_of(document: dict[str, Any]) -> str | None:
    return schema.document_problem(document) or schema.binding_problem(
        document.get("tracker"), ADAPTERS
    )


# -- the sweep --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("fields")
    root = base / "sweep"
    env = hermetic_env(base / "env")
    ids = make_sweep(root, env, 3)
    return SimpleNamespace(root=root, ids=ids, env=env)


# -- the check itself -------------------------------------------------------------------------
def test_every_field_of_the_schema_wrong_typed_is_named(sweep: SimpleNamespace) -> None:
    document = full_document(doc(sweep.root, sweep.ids[0]))
    assert problem_of(document) is None, "the full document is valid"
    paths = list(field_paths(document))
    assert len(paths) >= 60, len(paths)
    for path, types in paths:
        damaged, value = broken(document, path, types)
        problem = problem_of(damaged)
        assert problem is not None, (path, value)
        assert repr(path[-1]) in problem or f"no {path[-1]}" in problem, (path, problem)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["tracker"]["backends"]["wandb"].update(state={"fragments": ["a", "list"]}),
        lambda d: d["tracker"]["backends"]["wandb"]["state"]["fragments"].update(x=[1, 2]),
        lambda d: d["tracker"]["backends"]["wandb"].update(inflight=["f"]),
        lambda d: d["tracker"]["backends"]["wandb"]["inflight"].update(fragments=[]),
        lambda d: d["tracker"]["backends"]["wandb"]["state"]["fragments"][FRAGMENT].update(
            artifacts=[1]
        ),
        lambda d: d["tracker"]["backends"]["wandb"]["state"]["fragments"][FRAGMENT].update(
            first=None
        ),
        lambda d: d["tracker"].update(previous_runs=["not an object"]),
        lambda d: d["tracker"]["previous_runs"][0].update(backends={"wandb": "x"}),
        lambda d: d.update(attempt=["host"]),
    ],
)
def test_structures_of_the_wrong_shape_are_named(sweep: SimpleNamespace, change: Any) -> None:
    document = full_document(doc(sweep.root, sweep.ids[0]))
    change(document)
    assert problem_of(document) is not None


# -- one sync, every field broken in its own job ---------------------------------------------------
def test_each_field_wrong_typed_in_one_job_among_healthy_ones_is_one_line(
    copy: Path, sweep: SimpleNamespace, server: FakeWandbServer
) -> None:
    base = full_document(doc(copy, sweep.ids[0]))
    paths = list(field_paths(base))
    made = json.loads(
        run_cmd(
            [PYTHON, "-c", MAKE_JOBS, str(len(paths) + 3), "2"], copy, sweep.env, 120, True
        ).stdout
    )
    corrupt = [job for job in made if job not in sweep.ids][: len(paths)]
    assert len(corrupt) == len(paths)
    damaged = {}
    for job, (path, types) in zip(corrupt, paths, strict=True):
        damaged[job], _ = broken(base, path, types)
        write_doc(copy, job, damaged[job])

    result = sync(copy)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for job in corrupt:
        said = [line for line in lines if job in line]
        assert len(said) == 1 and said[0].startswith(f"failed: job {job}: corrupt: "), said
    assert result.stdout.splitlines()[-1] == (
        f"wandb: 3 uploaded; {len(corrupt)} job(s) corrupt (their documents cannot be read)"
    )
    assert_wandb_once(server, copy, sweep.ids)
    for job in corrupt:  # left as they were
        assert doc(copy, job) == damaged[job]

    # The workflow: each corrupt job one warning, the `corrupt` label, no traceback.
    status = run_cmd([PYTHON, "project.py", "status", "-d"], copy, check=True)
    assert "Traceback" not in status.stderr
    for job in corrupt:
        assert sum(job in line for line in status.stderr.splitlines()) == 1, job


# -- one job's preparation raising --------------------------------------------------------------
def test_one_jobs_preparation_raising_stays_with_that_job(
    copy: Path,
    sweep: SimpleNamespace,
    server: FakeWandbServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    from aexp.cli import main
    from aexp.sync import wandb_prepare

    bad = sweep.ids[1]
    real = wandb_prepare.prepare_wandb

    def prepare(work: Any, **kwargs: Any) -> Any:
        if work.job_id == bad:
            raise RuntimeError("the disk controller caught fire")
        return real(work, **kwargs)

    monkeypatch.setattr(wandb_prepare, "prepare_wandb", prepare)
    monkeypatch.chdir(copy)

    code = main(["sync-offline"])

    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out + err
    failures = [line for line in err.splitlines() if line.startswith("failed:")]
    assert failures == [
        f"failed: job {bad} run {binding(copy, bad)['run_id']} "
        f"({next((copy / 'workspace' / bad / 'wandb').glob('offline-run-*'))}): "
        "could not be prepared for upload: the disk controller caught fire"
    ]
    assert out.splitlines()[-1] == (
        "wandb: 2 uploaded, 1 failed (could not be prepared for upload: the disk controller "
        "caught fire)"
    )
    good = [job for job in sweep.ids if job != bad]
    assert_wandb_once(server, copy, good)
    assert binding(copy, bad)["run_id"] not in server.runs()
