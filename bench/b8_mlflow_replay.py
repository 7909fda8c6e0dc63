"""Benchmark 8: replaying run journals into MLflow vs logging the same rows with `log_batch`.

`--mlflow-runs` journals (default 200) of `--mlflow-steps` rows each (default 1,000; four
metrics a row: loss, acc, lr, epoch), one finished attempt, six params and the workflow's tags,
are written once with `aexp.journal.JournalWriter` and kept under bench/.cache/. Each repetition
gives each side a fresh local sqlite store (a copy of an empty, migrated MLflow database: MLflow's
~8 s of schema migrations are the same for both and not what is compared):

    ours      `MlflowAdapter.replay` of every journal (read_journal + replay, state lost: each run
              is looked up by its tag first, as after a lost job document)
    baseline  MLflow's own client doing the same work by hand, with the rows already in memory:
              `create_experiment`, then per run `create_run` (the same tags), one `log_batch` of
              the params, `log_batch` of the rows in requests of 996 points (the same steps and
              timestamps), `set_terminated(FINISHED)`

Both run in one child process with the hermetic environment (MLflow imported once, before the
clock), alternating run by run (who goes first flips every run: this machine is shared, and
whole-round alternation left samples of one side 150 s and 240 s apart), and each store is checked
to hold every point. A repetition's ratio is ours' summed time over the baseline's. Then ours
replays its store again with the states the first replay returned (nothing to send): an
informational line. Target: median ratio <= 1.2.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, Result, hermetic_env, log, make_result
from bench.generate import is_generated, mark_generated

LIMIT = 1.2
GENERATOR_VERSION = "1"
METRICS = ("loss", "acc", "lr", "epoch")
PER_REQUEST = 996  # 249 rows of 4 points: what the replay packs under MLflow's 1,000 entities


def available() -> str | None:
    """None if benchmark 8 can run, else why not."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        return "the mlflow package is not installed"
    return None


def journals(n_runs: int, n_steps: int, cache: Path) -> Path:
    """`n_runs` finished runs' journals under `cache` (written once, then reused)."""
    from aexp.journal import JournalWriter, journal_path

    root = cache / f"mlflow-replay-{n_runs}x{n_steps}"
    key = f"{GENERATOR_VERSION} {n_runs} {n_steps}"
    if is_generated(root, key):
        return root
    if root.exists():
        shutil.rmtree(root)
    log(f"  writing {n_runs} journals of {n_steps} rows in {root} ...")
    for index in range(n_runs):
        run_id = f"b8{index:06d}"
        job = root / "workspace" / f"{index:032x}"
        writer = JournalWriter(journal_path(job, run_id))
        condition = ("full", "ablate")[index % 2]
        writer.init_run(
            run_id=run_id,
            project="bench-mlflow",
            group=f"H012/E018/{condition}",
            tags=["H012", "E018", condition],
            config={
                "condition": condition,
                "seed": index,
                "lr": 0.01,
                "model.depth": 4,
                "job_id": f"{index:032x}",
                "limina.experiment_id": "E018",
                "limina.hypothesis_id": "H012",
            },
            notes=None,
            offline=True,
            backends=["mlflow"],
        )
        writer.resume_run(attempt=1, host="node")
        for step in range(n_steps):
            row = {"loss": 1.0 / (step + 1), "acc": step / n_steps, "lr": 0.01, "epoch": step}
            writer.log(row, step)
        writer.finish(0)
        writer.close()
    mark_generated(root, key)
    return root


def _baseline_data(paths: list[Path]) -> list[dict[str, Any]]:
    """What a user's own script would hold in memory: every run's tags, params and rows."""
    from aexp.journal import read_journal
    from aexp.trackers.mlflow import limits
    from aexp.trackers.mlflow.mapping import ms, run_tags

    runs = []
    for path in paths:
        journal = read_journal(path)
        rows = [(row.step, ms(row.timestamp), row.metrics) for row in journal.history()]
        runs.append(
            {
                "run_id": journal.run_id,
                "tags": run_tags(
                    run_id=journal.run_id,
                    group=journal.group,
                    labels=journal.init["tags"],
                    config=journal.config,
                ),
                "params": limits.flatten_config(journal.config),
                "start": ms(journal.attempts[0].started_at),
                "end": ms(journal.attempts[-1].ended_at),
                "rows": rows,
            }
        )
    return runs


def _child(root: str, template: str, scratch: str, reps: int) -> None:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from aexp.journal import read_journal
    from aexp.trackers.mlflow import MlflowAdapter
    from aexp.trackers.mlflow.uri import default_artifact_location

    paths = sorted(Path(root, "workspace").glob("*/tracker_log/*/events.jsonl"))
    data = _baseline_data(paths)
    counter = iter(range(10**6))

    def fresh() -> str:
        db = Path(scratch, f"{next(counter)}.db")
        shutil.copyfile(template, db)
        return f"sqlite:///{db}"

    def held(uri: str) -> int:
        # Every point of every run, counted in the database itself (MLflow's client would read
        # each history back: minutes at the default size).
        with contextlib.closing(sqlite3.connect(uri[len("sqlite:///") :])) as db:
            return db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]

    def replay_one(adapter: Any, path: Path, state: dict[str, Any]) -> Any:
        return adapter.replay(read_journal(path), job_path=str(path.parents[2]), state=state)

    def log_one(client: Any, experiment: str, run: dict[str, Any]) -> None:
        mlid = client.create_run(
            experiment, start_time=run["start"], tags=run["tags"], run_name=run["run_id"]
        ).info.run_id
        params = [Param(k, v) for k, v in run["params"].items()]
        client.log_batch(mlid, params=params, synchronous=True)
        batch: list[Any] = []
        for step, stamp, metrics in run["rows"]:
            batch.extend(Metric(k, float(v), stamp, step) for k, v in metrics.items())
            if len(batch) >= PER_REQUEST:
                client.log_batch(mlid, metrics=batch, synchronous=True)
                batch = []
        if batch:
            client.log_batch(mlid, metrics=batch, synchronous=True)
        client.set_terminated(mlid, "FINISHED", end_time=run["end"])

    def round_(n: int) -> tuple[float, float, float]:
        """Both sides over the first `n` runs, each into its fresh store, alternating run by run
        (who goes first flips every run), so both see the same load of this shared machine."""
        ours_uri, base_uri = fresh(), fresh()
        adapter = MlflowAdapter(ours_uri)
        adapter._store()  # the client made (and the database opened) before the clock
        client = MlflowClient(tracking_uri=base_uri)
        client.search_experiments()
        clock = time.perf_counter
        t_ours = t_base = 0.0
        t0 = clock()
        experiment = client.create_experiment(
            "bench-mlflow", artifact_location=default_artifact_location(base_uri)
        )
        t_base += clock() - t0
        states = []
        for i in range(n):
            if i % 2:
                t0 = clock()
                log_one(client, experiment, data[i])
                t1 = clock()
                states.append(replay_one(adapter, paths[i], {}).state)
                t2 = clock()
                t_base, t_ours = t_base + t1 - t0, t_ours + t2 - t1
            else:
                t0 = clock()
                states.append(replay_one(adapter, paths[i], {}).state)
                t1 = clock()
                log_one(client, experiment, data[i])
                t2 = clock()
                t_ours, t_base = t_ours + t1 - t0, t_base + t2 - t1
        points = sum(len(m) for run in data[:n] for _, _, m in run["rows"])
        assert held(ours_uri) == points, "ours: the store does not hold every point"
        assert held(base_uri) == points, "baseline: the store does not hold every point"
        t0 = clock()
        for path, state in zip(paths[:n], states, strict=True):
            result = replay_one(adapter, path, state)
            assert result.rows == 0 and result.complete
        t_second = clock() - t0
        for db in Path(scratch).glob("*.db"):
            db.unlink()
        return t_ours, t_base, t_second

    round_(3)  # warm-up: SQLAlchemy's mappers and statement caches, the page cache
    a: list[float] = []
    b: list[float] = []
    second: list[float] = []
    for _ in range(reps):
        t_ours, t_base, t_second = round_(len(paths))
        a.append(t_ours)
        b.append(t_base)
        second.append(t_second)
    points = sum(len(m) for run in data for _, _, m in run["rows"])
    print(json.dumps({"ours": a, "baseline": b, "second": second, "points": points}))


def run(opts: Any) -> list[Result]:
    n_runs = getattr(opts, "mlflow_runs", None) or 200
    n_steps = getattr(opts, "mlflow_steps", None) or 1000
    reps = max(3, getattr(opts, "reps", 3) - 2)
    root = journals(n_runs, n_steps, opts.cache)
    scratch = Path(tempfile.mkdtemp(prefix="mlflow-replay-", dir=opts.cache))
    try:
        env = hermetic_env(scratch / "env", PYTHONPATH=str(REPO))
        sys.path.insert(0, str(REPO / "tests"))
        from mlflow_server import MLFLOW_ENV, make_empty_store

        env.update(MLFLOW_ENV)
        template = opts.cache / "mlflow-empty.db"
        if not template.exists():
            log("  creating an empty MLflow sqlite store (schema migrations, ~10 s) ...")
            make_empty_store(template, scratch)
        log(f"  mlflow replay: {n_runs} runs x {n_steps} rows, {reps} alternating repetitions")
        out = subprocess.run(
            [PYTHON, "-m", "bench.b8_mlflow_replay", *map(str, (root, template, scratch, reps))],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=6 * 3600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"mlflow benchmark child failed:\n{out.stderr[-4000:]}")
        data = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    size = {"runs": n_runs, "steps": n_steps, "points": data["points"]}
    return [
        make_result(
            f"MLflow replay, {n_runs} runs x {n_steps} rows",
            8,
            data["ours"],
            data["baseline"],
            limit=LIMIT,
            notes="MlflowAdapter.replay of journals vs hand-written MlflowClient.log_batch of the "
            "same runs, tags, params and rows (in memory), each into a fresh sqlite store",
            extra=size,
        ),
        make_result(
            "MLflow second replay (nothing to send) / first",
            8,
            data["second"],
            data["ours"],
            limit=0.05,
            judged=False,
            notes="the same journals replayed again with the states the first replay returned",
            extra=size,
        ),
    ]


if __name__ == "__main__":
    Path(sys.argv[3]).mkdir(parents=True, exist_ok=True)
    _child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
