"""Results from the jobs themselves (aexp.results, `aexp runs`, `aexp plot`): numbers checked
against the runs' journals, read here independently with `aexp.journal.read_journal`.

A module fixture builds a real signac project through the library (noop backend: the journal
alone) with a learning-rate x seed sweep: finished runs, one preempted and resumed, one failed,
one with a NaN and a re-done step, one bound and never run, one unbound. Commands run as the
installed `aexp` script, as a user runs them; tests that change the project use a copy.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import aexp_cli, bad, ok

import aexp
from aexp.journal import JournalWriter, read_journal
from aexp.lifecycle import Preempted, run_lifecycle
from aexp.results import (
    JournalStats,
    Selection,
    SelectionError,
    build_table,
    curve_of,
    iter_records,
    parse_metric,
    parse_metrics,
    varying_keys,
)
from aexp.results.curves import KILLED, PREEMPTED
from aexp.results.stats import CACHE_DIR

STEPS = 5


def loss_at(lr: float, seed: int, step: int) -> float:
    """The loss the fixture logs: distinct per job, falling with the step."""
    return round(1.0 / (1 + step) + lr + 0.01 * seed, 6)


def _run(job, values: list[dict], *, preempt_after: int | None = None, fail: bool = False):
    """One attempt logging `values` (a dict may carry "_step" for an explicit step)."""
    try:
        with run_lifecycle(job) as tracker:
            for i, row in enumerate(values):
                row = dict(row)
                step = row.pop("_step", None)
                tracker.log(row, step=step)
                if preempt_after is not None and i + 1 == preempt_after:
                    raise Preempted(15)
            if fail:
                raise RuntimeError("injected failure")
    except (Preempted, RuntimeError):
        pass


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    import signac

    root = tmp_path_factory.mktemp("results") / "project"
    root.mkdir()
    project = signac.init_project(root)
    (root / "signac.rc").write_text("[tracker]\nbackend = noop\nproject = demo\n")
    jobs = {}
    for lr in (0.1, 0.01):
        for seed in (0, 1, 2):
            job = aexp.create_run(
                experiment_id="E1",
                hypothesis_id="H1",
                statepoint={"lr": lr, "seed": seed, "condition": "full"},
                project=project,
            )
            jobs[(lr, seed)] = job
    unbound = aexp.create_run(
        experiment_id="E1", hypothesis_id="H1", statepoint={"lr": 0.5, "seed": 0}, project=project
    )
    for key, job in jobs.items():
        aexp.bind_tracker(job, "noop", project="demo", group_by=())
        lr, seed = key
        rows = [
            {"loss": loss_at(lr, seed, s), "accuracy": 0.5 + s / 10, "epoch": s}
            for s in range(STEPS)
        ]
        if key == (0.1, 1):  # preempted after 2 rows, resumed for the rest
            _run(job, rows, preempt_after=2)
            _run(job, rows[2:])
        elif key == (0.01, 0):  # fails after 2 rows
            _run(job, rows[:2], fail=True)
        elif key == (0.01, 2):  # a NaN at step 3, then a re-done step 1 (excluded everywhere)
            rows[3]["loss"] = math.nan
            _run(job, [*rows, {"loss": 999.0, "_step": 1}])
        elif key == (0.01, 1):
            pass  # bound, never run
        else:
            _run(job, rows)
    ids = {f"{lr}/{seed}": job.id for (lr, seed), job in jobs.items()}
    ids["unbound"] = unbound.id
    return SimpleNamespace(root=root, project=project, ids=ids, jobs=jobs)


@pytest.fixture
def copy(sweep: SimpleNamespace, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(sweep.root, root)
    return root


def history(root: Path, job_id: str) -> list:
    """The run's history rows, read straight from its journal (the reference in every test)."""
    doc = json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())
    run_id = doc["tracker"]["run_id"]
    return read_journal(root / "workspace" / job_id / "tracker_log" / run_id / "events.jsonl")


def numbers(root: Path, job_id: str, key: str) -> list[float]:
    return [r.metrics[key] for r in history(root, job_id).history() if key in r.metrics]


# -- specs, selections, varying keys ------------------------------------------------------------
def test_metric_specs() -> None:
    assert parse_metric("loss").name == "loss" and not parse_metric("loss").journal
    assert parse_metric("loss:min").reduction == "min" and parse_metric("loss:min").journal
    assert parse_metric("train/loss:mean").key == "train/loss"
    assert [s.name for s in parse_metrics(["loss,accuracy:max", "loss"])] == [
        "loss",
        "accuracy:max",
    ]
    with pytest.raises(SelectionError, match="unknown reduction 'median'"):
        parse_metric("loss:median")
    with pytest.raises(SelectionError, match="has no name"):
        parse_metric(":min")


def test_selection_compares_json_values_and_varying_keys() -> None:
    sel = Selection(where={"lr": [0.1], "opt.name": ["adam"], "flag": [True]})
    assert sel.matches_statepoint({"lr": 0.1, "opt": {"name": "adam"}, "flag": True})
    assert not sel.matches_statepoint({"lr": 0.1, "opt": {"name": "adam"}, "flag": 1})
    assert not sel.matches_statepoint({"lr": 0.1, "opt": {"name": "sgd"}, "flag": True})
    assert not sel.matches_statepoint({"opt": {"name": "adam"}, "flag": True})  # no lr
    assert Selection(where={"seed": [1]}).matches_statepoint({"seed": 1.0})
    assert not Selection(where={"seed": [1]}).matches_statepoint({"seed": "1"})
    with pytest.raises(SelectionError, match="unknown state"):
        Selection(states=("done",))
    points = [{"a": 1, "b": {"c": 2}, "d": 0}, {"a": 1, "b": {"c": 3}}, {"a": 1, "b": {"c": 2}}]
    assert varying_keys(points) == ["b.c", "d"]


# -- the table: numbers equal the journal --------------------------------------------------------
def test_reductions_equal_the_journal(sweep: SimpleNamespace) -> None:
    records = list(iter_records(sweep.project, group_by=()))
    specs = parse_metrics(["loss,loss:min,loss:max,loss:mean,loss:first,loss:last,loss:count"])
    table = build_table(records, metrics=specs, stats=JournalStats(None))
    rows = {row["job"]: row for row in table.rows}
    assert table.params == ["lr", "seed", "condition"]  # the keys that vary
    for name, job_id in sweep.ids.items():
        row = rows[job_id]
        if name in ("unbound", "0.01/1"):
            assert row["loss"] is None and row["loss:min"] is None, name
            continue
        values = numbers(sweep.root, job_id, "loss")
        finite = [v for v in values if not math.isnan(v)]
        assert row["loss:min"] == min(finite), name
        assert row["loss:max"] == max(finite), name
        assert row["loss:mean"] == pytest.approx(sum(finite) / len(finite)), name
        assert row["loss:first"] == values[0] and row["loss:count"] == len(values), name
        assert row["loss:last"] == values[-1] == row["loss"], name
    # The re-done step (loss 999) is in the journal but in no result; the NaN is skipped by
    # min/max/mean but counted.
    nan_job = sweep.ids["0.01/2"]
    assert any(r.redo and r.metrics["loss"] == 999.0 for r in history(sweep.root, nan_job).rows)
    assert rows[nan_job]["loss:max"] < 999 and rows[nan_job]["loss:count"] == STEPS
    assert rows[sweep.ids["0.1/1"]]["loss:count"] == STEPS  # both attempts joined
    assert rows[sweep.ids["0.01/0"]]["state"] == "failed"
    assert rows[sweep.ids["0.01/0"]]["loss:count"] == 2


def test_sorting_puts_missing_values_last_either_way(sweep: SimpleNamespace) -> None:
    records = list(iter_records(sweep.project, group_by=()))
    up = build_table(records, metrics=parse_metrics(["loss:min"]), sort="loss:min")
    down = build_table(records, metrics=parse_metrics(["loss:min"]), sort="-loss:min")
    values_up = [row["loss:min"] for row in up.rows]
    values_down = [row["loss:min"] for row in down.rows]
    present = [v for v in values_up if v is not None]
    assert present == sorted(present) and values_up[-2:] == [None, None]
    assert [v for v in values_down if v is not None] == sorted(present, reverse=True)
    assert values_down[-2:] == [None, None]
    by_seed = build_table(records, sort="-seed")
    assert [r["seed"] for r in by_seed.rows] == sorted(
        (r["seed"] for r in by_seed.rows), reverse=True
    )
    with pytest.raises(SelectionError, match="no column, state-point key or metric"):
        build_table(records, sort="nonsense")


def test_long_journals_are_cached_and_read_again_only_from_where_they_grew(
    copy: Path, sweep: SimpleNamespace
) -> None:
    import signac

    project = signac.get_project(copy)

    def table(stats: JournalStats, spec: str = "loss:max") -> list:
        return build_table(iter_records(project), metrics=parse_metrics([spec]), stats=stats).rows

    # Short journals are read every time (cheaper than any cache); nothing is written.
    short = JournalStats(copy)
    first = table(short)
    assert short.reads == 6 and not (copy / CACHE_DIR).exists()
    # From `min_bytes` on (64 KB by default), each run's aggregates of the keys asked so far
    # are kept in a file of its own: a second pass reads no journal.
    cached = JournalStats(copy, min_bytes=0)
    assert table(cached) == first and cached.reads == 6
    assert len(list((copy / CACHE_DIR).glob("*/*.json"))) == 6
    again = JournalStats(copy, min_bytes=0)
    assert table(again) == first and again.reads == 0
    # A key not asked before: each journal is read once more, for it and the ones before.
    other = JournalStats(copy, min_bytes=0)
    table(other, "accuracy:min")
    assert other.reads == 6
    assert table(JournalStats(copy, min_bytes=0)) == first  # loss:max still covered
    # A journal that grows is read from where the cache stopped; the result is the full one.
    job_id = sweep.ids["0.1/0"]
    path = Path(next(r.journal for r in iter_records(project) if r.job_id == job_id))
    before = path.stat().st_size
    writer = JournalWriter(path)
    writer.log({"loss": 123.0}, 99)
    writer.close()
    import aexp.results.stats as stats_module

    reads: list[int] = []
    real = stats_module.read_rows

    def spy(p: str, offset: int = 0) -> tuple:
        reads.append(offset)
        return real(p, offset)

    grown = JournalStats(copy, min_bytes=0)
    stats_module.read_rows = spy
    try:
        rows = table(grown)
    finally:
        stats_module.read_rows = real
    assert reads == [before] and grown.reads == 1
    assert next(r for r in rows if r["job"] == job_id)["loss:max"] == 123.0
    # A damaged cache file is read past: the journal is read again in full.
    for entry in (copy / CACHE_DIR).glob(f"{job_id}/*.json"):
        entry.write_text("{not json")
    damaged = JournalStats(copy, min_bytes=0)
    assert table(damaged) == rows and damaged.reads == 1


# -- curves -------------------------------------------------------------------------------------
def test_a_curve_joins_attempts_and_marks_where_the_preempted_one_ended(
    sweep: SimpleNamespace,
) -> None:
    journal = history(sweep.root, sweep.ids["0.1/1"])
    curve = curve_of(journal, "loss")
    assert curve.steps == list(range(STEPS))
    assert curve.values == [loss_at(0.1, 1, s) for s in range(STEPS)]
    assert curve.attempts == [1, 1, 2, 2, 2]
    assert [(b.step, b.value, b.attempt, b.kind) for b in curve.breaks] == [
        (1, loss_at(0.1, 1, 1), 1, PREEMPTED)
    ]
    assert curve_of(history(sweep.root, sweep.ids["0.1/0"]), "loss").breaks == []
    nan = curve_of(history(sweep.root, sweep.ids["0.01/2"]), "loss")
    assert nan.steps == list(range(STEPS)) and math.isnan(nan.values[3])


def test_an_attempt_that_died_without_finishing_is_a_killed_break(tmp_path: Path) -> None:
    path = tmp_path / "tracker_log" / "abc" / "events.jsonl"
    writer = JournalWriter(path)
    writer.init_run(
        run_id="abc", project="p", group="g", tags=[], config={}, notes=None, offline=True,
        backends=["noop"],
    )  # fmt: skip
    writer.resume_run(attempt=1)
    for step in range(3):
        writer.log({"loss": 3.0 - step}, step)
    writer.resume_run(attempt=2)  # attempt 1 was SIGKILLed: no finish
    writer.log({"loss": 0.5}, 3)
    writer.finish(0)
    writer.close()
    curve = curve_of(read_journal(path), "loss")
    assert [(b.step, b.value, b.kind) for b in curve.breaks] == [(2, 1.0, KILLED)]


# -- `aexp runs` -------------------------------------------------------------------------------
def test_runs_metrics_json_and_csv_agree_with_the_journal(sweep: SimpleNamespace) -> None:
    root = sweep.root
    doc = json.loads(ok(aexp_cli("runs", "--metrics", "loss,loss:min", "--json", cwd=root)))
    assert doc["schema"] == "aexp.runs/1" and doc["count"] == len(doc["jobs"]) == 7
    assert doc["params"] == ["lr", "seed", "condition"] and doc["metrics"] == ["loss", "loss:min"]
    rows = doc["jobs"]
    by_id = {r["job_id"]: r for r in rows}
    for name in ("0.1/0", "0.1/1", "0.1/2", "0.01/0"):
        values = numbers(root, sweep.ids[name], "loss")
        metrics = by_id[sweep.ids[name]]["metrics"]
        assert metrics == {"loss": values[-1], "loss:min": min(values)}, name
    assert (
        by_id[sweep.ids["0.01/2"]]["metrics"]["loss"]
        == numbers(root, sweep.ids["0.01/2"], "loss")[-1]
    )
    assert by_id[sweep.ids["0.1/1"]]["params"] == {"lr": 0.1, "seed": 1, "condition": "full"}
    assert by_id[sweep.ids["0.1/1"]]["attempts"] == 2
    # --format json is --json
    assert (
        json.loads(ok(aexp_cli("runs", "--metrics", "loss,loss:min", "--format", "json", cwd=root)))
        == doc
    )
    # CSV: a header, one line per job, the full values
    text = ok(aexp_cli("runs", "--params", "lr,seed", "--metrics", "loss:max", "--format", "csv",
                       "--where", "lr=0.1", cwd=root))  # fmt: skip
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == [
        "job", "lr", "seed", "group", "backend", "run", "state", "synced", "loss:max", "url",
    ]  # fmt: skip
    assert {row["job"] for row in table} == {sweep.ids[f"0.1/{s}"] for s in range(3)}
    for row in table:
        assert float(row["loss:max"]) == max(numbers(root, row["job"], "loss"))
        assert row["lr"] == "0.1" and row["backend"] == "noop" and row["synced"] == ""


def test_runs_table_filters_and_sorts(sweep: SimpleNamespace) -> None:
    root = sweep.root
    out = ok(aexp_cli("runs", "--where", "lr=0.1", "--where", "seed=1..2", "--metrics",
                      "loss:min", "--sort", "-loss:min", cwd=root))  # fmt: skip
    lines = out.splitlines()
    assert lines[0].split() == [  # lr is the same in every row: only seed varies
        "JOB", "seed", "GROUP", "BACKEND", "RUN", "STATE", "SYNCED", "loss:min", "URL",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == [sweep.ids["0.1/2"], sweep.ids["0.1/1"]]
    assert lines[1].split()[7] == f"{min(numbers(root, sweep.ids['0.1/2'], 'loss')):.6g}"
    quiet = ok(aexp_cli("runs", "--where", "lr=0.01|0.5", "--state", "unbound", "-q", cwd=root))
    assert quiet.split() == [sweep.ids["unbound"]]
    assert ok(aexp_cli("runs", "--sort=-seed", "--where", "lr=0.1", "-q", cwd=root)).split() == [
        sweep.ids["0.1/2"], sweep.ids["0.1/1"], sweep.ids["0.1/0"],
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--where", "lr"], "--where 'lr': 'lr' has no '='"),
        (["--where", "seed=3..1"], "the range 3..1 is empty"),
        (["--where", "lr=0.1", "--where", "lr=0.2"], "lr is given twice"),
        (["--metrics", "loss:median"], "unknown reduction 'median'"),
        (["--sort", "nonsense"], "no column, state-point key or metric is named 'nonsense'"),
        (["--format", "xml"], "unknown format 'xml'"),
        (["--json", "--format", "csv"], "--json and --format csv disagree"),
        (["--state", "done"], "unknown state 'done'"),
    ],
)
def test_runs_bad_input_is_one_sentence(sweep: SimpleNamespace, args, fragment) -> None:
    bad(aexp_cli("runs", *args, cwd=sweep.root), fragment)


# -- `aexp plot` -------------------------------------------------------------------------------
def test_plot_draws_one_curve_per_job_with_the_journal_data_and_the_marks(
    sweep: SimpleNamespace,
) -> None:
    from aexp.results.curves import load_curves
    from aexp.results.plot import plot_metric

    records = list(iter_records(sweep.project, group_by=()))
    series = load_curves(records, "loss")
    fig = plot_metric(series, "loss", by="lr", title="loss of the sweep")
    (ax,) = fig.axes
    curves = {line.get_gid().split(":", 1)[1]: line for line in ax.get_lines()
              if (line.get_gid() or "").startswith("curve:")}  # fmt: skip
    ran = {sweep.ids[n] for n in ("0.1/0", "0.1/1", "0.1/2", "0.01/0", "0.01/2")}
    assert set(curves) == ran  # one per job that logged loss; none for unbound/never-run
    for job_id, line in curves.items():
        journal = history(sweep.root, job_id)
        expected = [(r.step, r.metrics["loss"]) for r in journal.history()]
        got = list(zip(line.get_xdata(), line.get_ydata(), strict=True))
        assert len(got) == len(expected)
        for (s1, v1), (s2, v2) in zip(got, expected, strict=True):
            assert s1 == s2 and (v1 == v2 or (math.isnan(v1) and math.isnan(v2)))
    # Colours by lr: the two values get two colours, every job of a value the same one.
    colours = {job: curves[job].get_color() for job in curves}
    assert colours[sweep.ids["0.1/0"]] == colours[sweep.ids["0.1/2"]]
    assert colours[sweep.ids["0.1/0"]] != colours[sweep.ids["0.01/0"]]
    # The preempted attempt's end is marked where it stopped: step 1 of job 0.1/1.
    marks = [line for line in ax.get_lines() if line.get_gid() == f"preempted:{sweep.ids['0.1/1']}"]
    assert len(marks) == 1
    assert list(marks[0].get_xdata()) == [1] and list(marks[0].get_ydata()) == [loss_at(0.1, 1, 1)]
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
    assert ax.get_title() == "loss of the sweep"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["lr=0.01 (2 jobs)", "lr=0.1 (3 jobs)", "preempted: attempt ended here"]


def test_plot_band_is_the_mean_and_min_max_over_each_colour(sweep: SimpleNamespace) -> None:
    from aexp.results.curves import load_curves
    from aexp.results.plot import plot_metric

    records = [r for r in iter_records(sweep.project, group_by=()) if r.statepoint.get("lr") == 0.1]
    fig = plot_metric(load_curves(records, "loss"), "loss", by="lr", band="minmax")
    (ax,) = fig.axes
    (mean,) = [line for line in ax.get_lines() if line.get_gid() == "mean:lr=0.1"]
    expected = [sum(loss_at(0.1, s, step) for s in range(3)) / 3 for step in range(STEPS)]
    assert list(mean.get_xdata()) == list(range(STEPS))
    assert list(mean.get_ydata()) == pytest.approx(expected)
    (band,) = [c for c in ax.collections if c.get_gid() == "band:lr=0.1"]
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(min(loss_at(0.1, 0, s) for s in range(STEPS)))
    assert max(ys) == pytest.approx(max(loss_at(0.1, 2, s) for s in range(STEPS)))
    assert "band: min-max" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_command_writes_the_file(sweep: SimpleNamespace, tmp_path: Path) -> None:
    for name in ("loss.png", "loss.svg", "loss.pdf"):
        out = tmp_path / name
        said = ok(aexp_cli("plot", "loss", "--by", "lr", "--band", "--out", str(out),
                           cwd=sweep.root))  # fmt: skip
        assert out.stat().st_size > 1000
        assert said.startswith(f"wrote {out}: 5 curve(s) of loss, mean and min-max band")
        assert "1 interrupted attempt(s) marked" in said
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    default = ok(aexp_cli("plot", "accuracy", "--where", "lr=0.1", cwd=sweep.root))
    assert default.startswith("wrote accuracy.png: 3 curve(s)")
    os.unlink(sweep.root / "accuracy.png")
    bad(aexp_cli("plot", "nope", cwd=sweep.root), "logged 'nope'; metrics logged: loss, accuracy")
    bad(aexp_cli("plot", "loss", "--by", "colour", cwd=sweep.root), "--by colour: no job")
    bad(aexp_cli("plot", "loss", "--out", str(tmp_path / "x.gif"), cwd=sweep.root),
        "must end in .png, .svg, .pdf")  # fmt: skip
    bad(aexp_cli("plot", "loss", "--where", "lr=7", cwd=sweep.root), "no jobs match (lr=7)")


def test_plot_without_matplotlib_says_how_to_install_it(
    sweep: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from aexp.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert main(["-C", str(sweep.root), "plot", "loss"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "aexp: error: plotting needs matplotlib; install it with: "
        "pip install 'agentic-experiments[plot]'"
    )
