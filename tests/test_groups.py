"""Which configuration wins, over seeds: `aexp runs --group-by`, `aexp best`, `aexp compare`
(aexp.results.groups, .ranking, .compare, .spread) on a sweep with known values.

A module fixture runs the sweep of tests/known_sweep.py (a real signac project through the
library, noop backend), whose runs' losses fall to values chosen there: every group's n, mean,
sample standard deviation and Student's t interval are known numbers, computed below by hand
from those values and the closed forms of t(0.975, 1) and t(0.975, 2):

    lr=0.1,  width=16   seeds 0, 1, 2 finished: 0.30, 0.32, 0.34; plus one bound, never run
    lr=0.1,  width=32   seeds 0, 1 finished: 0.25, 0.27; seed 2 FAILED at 0.10 (never averaged)
    lr=0.01, width=16   seed 0 finished: 0.40; seed 1 PREEMPTED at 0.45; seed 2 finished
                        without ever logging a loss (a missing metric)
    lr=0.01, width=32   seeds 0, 1, 2 finished: 0.26 each (a tie with lr=0.1, width=32)

Commands run as the installed `aexp` script, as a user runs them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import aexp_cli, ok
from cli_helpers import bad as bad_input
from known_sweep import T1, T2, build_sweep

from aexp.results import JournalStats, iter_records, parse_metrics
from aexp.results.groups import group_records
from aexp.results.ranking import best_of
from aexp.results.spread import gap, spread, t_quantile


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return build_sweep(tmp_path_factory.mktemp("groups") / "project")


def _ci(values: list[float], t: float) -> tuple[float, float, float, float]:
    """(mean, std, low, high) computed by hand."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


# -- the statistics ------------------------------------------------------------------------------
def test_t_quantiles_equal_their_closed_forms() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(T1, rel=1e-12)
    assert t_quantile(0.975, 2) == pytest.approx(T2, rel=1e-12)
    # df = 4 has no simple closed form: the value of statistical tables (and scipy)
    assert t_quantile(0.975, 4) == pytest.approx(2.7764451051977987, rel=1e-12)
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959963984540054, rel=1e-6)  # the normal
    s = spread([0.30, 0.32, 0.34, math.nan, "x"])
    assert (s.n, s.left_out) == (3, 2)
    assert (s.mean, s.std) == (pytest.approx(0.32, rel=1e-12), pytest.approx(0.02, rel=1e-12))
    assert s.ci_low == pytest.approx(0.32 - T2 * 0.02 / math.sqrt(3), rel=1e-12)
    assert spread([0.4]).std is None and spread([0.4]).ci_low is None  # one seed: no spread
    assert spread([]).mean is None


def test_t_quantiles_agree_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy is only a cross-check")
    for df in (1, 2, 3, 3.7, 9.5, 30, 250):
        assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-10)


# -- grouped runs --------------------------------------------------------------------------------
def _groups(sweep: SimpleNamespace, keys=None, metrics=("loss:min",)):
    return group_records(
        iter_records(sweep.root),
        keys=keys,
        seed_keys=("seed",),
        metrics=parse_metrics(metrics),
        stats=JournalStats(sweep.root),
        keep_runs=True,
    )


def test_groups_count_every_run_and_average_the_finished_ones(sweep: SimpleNamespace) -> None:
    groups = _groups(sweep, metrics=("loss:min", "loss"))
    assert groups.keys == ["lr", "width"]  # seed is a seed key; the ids do not vary
    by = {(g.config["lr"], g.config["width"]): g for g in groups.groups}
    assert list(by) == [(0.01, 16), (0.01, 32), (0.1, 16), (0.1, 32)]  # numbers, in order
    assert {k: (g.runs, g.states) for k, g in by.items()} == {
        (0.01, 16): (3, {"finished": 2, "preempted": 1}),
        (0.01, 32): (3, {"finished": 3}),
        (0.1, 16): (4, {"finished": 3, "bound": 1}),
        (0.1, 32): (3, {"finished": 2, "failed": 1}),
    }
    a = by[(0.1, 16)].spread("loss:min")
    mean, std, low, high = _ci([0.30, 0.32, 0.34], T2)
    assert (a.n, a.left_out) == (3, 0)
    assert [a.mean, a.std, a.ci_low, a.ci_high] == pytest.approx([mean, std, low, high], rel=1e-12)
    assert (mean, std) == pytest.approx((0.32, 0.02), rel=1e-12)
    b = by[(0.1, 32)].spread("loss:min")  # the failed seed's 0.10 is not in it
    mean, std, low, high = _ci([0.25, 0.27], T1)
    assert [b.n, b.mean, b.std, b.ci_low, b.ci_high] == pytest.approx(
        [2, mean, std, low, high], rel=1e-12
    )
    assert b.low == 0.25 and b.high == 0.27
    c = by[(0.01, 16)].spread("loss:min")  # one seed with a value; one without; one preempted
    assert (c.n, c.mean, c.std, c.ci_low, c.left_out) == (1, 0.40, None, None, 1)
    d = by[(0.01, 32)].spread("loss:min")
    assert (d.n, d.mean, d.std, d.ci_low, d.ci_high) == (
        3,
        pytest.approx(0.26),
        0.0,
        d.mean,
        d.mean,
    )
    # The last value (from the job documents) is the same number here: the loss falls.
    assert by[(0.1, 16)].spread("loss").mean == pytest.approx(0.32, rel=1e-12)


def test_runs_group_by_in_json_csv_and_text(sweep: SimpleNamespace) -> None:
    doc = json.loads(
        ok(aexp_cli("runs", "--group-by", "--metrics", "loss:min", "--json", cwd=sweep.root))
    )
    assert doc["schema"] == "aexp.runs.groups/1" and doc["keys"] == ["lr", "width"]
    assert doc["statistics"] == {
        "over": "finished runs", "std": "sample (n - 1)", "ci": "t", "confidence": 0.95
    }  # fmt: skip
    assert (doc["runs"], doc["count"]) == (13, 4)
    first = doc["groups"][2]
    assert first["config"] == {"lr": 0.1, "width": 16} and first["runs"] == 4
    assert first["states"] == {"bound": 1, "finished": 3}
    loss = first["metrics"]["loss:min"]
    mean, std, low, high = _ci([0.30, 0.32, 0.34], T2)
    assert [loss["n"], loss["mean"], loss["std"], *loss["ci95"]] == pytest.approx(
        [3, mean, std, low, high], rel=1e-12
    )
    assert doc["groups"][0]["metrics"]["loss:min"]["left_out"] == 1
    # CSV: one column per aggregate, every digit.
    rows = list(csv.DictReader(io.StringIO(ok(aexp_cli(
        "runs", "--group-by", "lr,width", "--metrics", "loss:min", "--format", "csv",
        "--sort", "-loss:min", cwd=sweep.root,
    )))))  # fmt: skip
    assert [(r["lr"], r["width"]) for r in rows] == [
        ("0.01", "16"),
        ("0.1", "16"),
        ("0.01", "32"),
        ("0.1", "32"),
    ]  # fmt: skip  (0.40, 0.32, then the tie at 0.26 in key order)
    assert rows[1]["loss:min.std"] and float(rows[1]["loss:min.std"]) == pytest.approx(0.02)
    assert (rows[3]["failed"], rows[3]["finished"], rows[3]["loss:min.n"]) == ("1", "2", "2")
    assert rows[0]["loss:min.std"] == "" and rows[0]["preempted"] == "1"
    # Text: the numbers rounded, the n column where a metric's n differs from the finished.
    text = ok(aexp_cli("runs", "--group-by", "--metrics", "loss:min", cwd=sweep.root))
    lines = text.splitlines()
    assert lines[0].split() == [
        "lr", "width", "RUNS", "FINISHED", "FAILED", "PREEMPTED",
        "loss:min", "mean", "std", "95%", "CI", "n",
    ]  # fmt: skip
    assert lines[3].split()[:7] == ["0.1", "16", "4", "3", "0", "0", "0.32"]
    assert "95% CI (Student's t) over the finished runs" in lines[-1]
    # Grouping by one key merges the widths; sorting by an aggregate or a count.
    by_lr = json.loads(ok(aexp_cli(
        "runs", "--group-by", "lr", "--metrics", "loss:min", "--json", "--sort", "-failed",
        cwd=sweep.root,
    )))  # fmt: skip
    assert [g["config"] for g in by_lr["groups"]] == [{"lr": 0.1}, {"lr": 0.01}]
    merged = by_lr["groups"][0]["metrics"]["loss:min"]
    assert merged["n"] == 5 and merged["mean"] == pytest.approx(
        (0.30 + 0.32 + 0.34 + 0.25 + 0.27) / 5, rel=1e-12
    )
    spreads = json.loads(ok(aexp_cli(
        "runs", "--group-by", "--metrics", "loss:min", "--json", "--sort", "-loss:min.std",
        cwd=sweep.root,
    )))["groups"]  # fmt: skip
    assert [g["metrics"]["loss:min"]["std"] for g in spreads][:3] == pytest.approx(
        [0.02, math.sqrt(0.0002), 0.0]
    )


# -- best ----------------------------------------------------------------------------------------
def test_best_names_the_winner_its_spread_the_runner_up_and_the_gap(sweep) -> None:
    doc = json.loads(ok(aexp_cli(
        "best", "loss:min", "--where", "lr=0.1", "--json", cwd=sweep.root
    )))  # fmt: skip
    assert doc["schema"] == "aexp.best/1" and doc["direction"] == "min"
    assert doc["best"]["config"] == {"width": 32} and doc["runner_up"]["config"] == {"width": 16}
    b, a = _ci([0.25, 0.27], T1), _ci([0.30, 0.32, 0.34], T2)
    assert doc["best"]["spread"]["mean"] == pytest.approx(b[0], rel=1e-12)
    # The gap: the runner-up's mean minus the best's, with Welch's interval.
    va, vb = a[1] ** 2 / 3, b[1] ** 2 / 2
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    half = t_quantile(0.975, df) * math.sqrt(va + vb)
    assert doc["gap"]["diff"] == pytest.approx(0.06, rel=1e-12)
    assert doc["gap"]["ci95"] == pytest.approx([0.06 - half, 0.06 + half], rel=1e-12)
    assert doc["gap"]["df"] == pytest.approx(df, rel=1e-12)
    assert doc["gap"]["resolved"] is (0.06 - half > 0) and doc["tie"] is False
    # The runs behind it: the failed seed is listed, with its value, but was not averaged.
    jobs = doc["best"]["jobs"]
    assert [(j["params"], j["state"], j["value"]) for j in jobs] == [
        ({"seed": 0}, "finished", 0.25), ({"seed": 1}, "finished", 0.27),
        ({"seed": 2}, "failed", 0.10),
    ]  # fmt: skip
    text = ok(aexp_cli("best", "loss:min", "--where", "lr=0.1", cwd=sweep.root))
    assert text.splitlines()[0] == (
        "best loss:min (lower is better) of 2 configuration(s) by width: width=32"
    )
    assert "gap: 0.06 (runner-up minus best), 95% CI [" in text
    assert "2 runs: 1 failed, 2 finished" not in text and "3 runs: 1 failed, 2 finished" in text


def test_best_on_a_tie_a_single_seed_and_a_maximum(sweep: SimpleNamespace) -> None:
    best = best_of(_groups(sweep), "loss:min", None)
    (first, s1), (second, s2) = best.ranked[:2]
    assert first.config == {"lr": 0.01, "width": 32} and second.config == {"lr": 0.1, "width": 32}
    assert best.tie and s1.mean == s2.mean and best.gap.diff == 0
    assert [g.config for g, _ in best.ranked[2:]] == [
        {"lr": 0.1, "width": 16}, {"lr": 0.01, "width": 16}
    ]  # fmt: skip
    text = ok(aexp_cli("best", "loss:min", cwd=sweep.root))
    assert "a tie, the two means are equal" in text
    # A single seed has no spread, and says so; --max ranks the other way.
    single = ok(aexp_cli("best", "loss:min", "--where", "lr=0.01,width=16", cwd=sweep.root))
    assert "0.4 (one finished run: no spread)" in single
    assert "runner-up: none" in single
    top = json.loads(ok(aexp_cli("best", "loss", "--max", "--json", cwd=sweep.root)))
    assert top["best"]["config"] == {"lr": 0.01, "width": 16} and top["direction"] == "max"
    # A configuration whose finished runs never logged the metric is not ranked.
    none = json.loads(ok(aexp_cli(
        "best", "loss:min", "--where", "seed=2", "--json", cwd=sweep.root
    )))  # fmt: skip
    assert none["unranked"] == [{"lr": 0.01, "width": 16}, {"lr": 0.1, "width": 32}]
    assert none["best"]["config"] == {"lr": 0.01, "width": 32}


# -- compare -------------------------------------------------------------------------------------
def test_compare_two_jobs_failed_and_finished(sweep: SimpleNamespace) -> None:
    failed, done = sweep.ids[(0.1, 32, 2)], sweep.ids[(0.1, 32, 0)]
    doc = json.loads(ok(aexp_cli("compare", failed[:8], done, "--json", cwd=sweep.root)))
    assert doc["schema"] == "aexp.compare/1"
    assert doc["a"]["states"] == {"failed": 1} and doc["b"]["states"] == {"finished": 1}
    assert doc["differs"] == {"seed": [2, 0]} and doc["same"]["lr"] == 0.1
    metrics = {m["name"]: m for m in doc["metrics"]}
    assert list(metrics) == ["acc", "loss"]  # what both logged, in order
    assert metrics["loss"]["a"]["mean"] == pytest.approx(0.10)
    assert metrics["loss"]["b_minus_a"]["diff"] == pytest.approx(0.15)
    assert metrics["loss"]["b_minus_a"]["ci95"] is None  # one run each: no interval
    text = ok(aexp_cli("compare", failed, done, cwd=sweep.root))
    assert f"A: job {failed[:8]} (1 run(s): 1 failed)" in text
    assert [line.split() for line in text.splitlines() if line.startswith("seed")] == [
        ["seed", "2", "0"]
    ]


def test_compare_two_configurations_tie_and_missing_metric(sweep, tmp_path: Path) -> None:
    doc = json.loads(ok(aexp_cli(
        "compare", "lr=0.1,width=32", "lr=0.01,width=32", "--metrics", "loss:min", "--json",
        cwd=sweep.root,
    )))  # fmt: skip
    assert doc["a"]["kind"] == "configuration" and doc["a"]["varies"] == ["seed"]
    assert doc["differs"] == {"lr": [0.1, 0.01]}
    (loss,) = doc["metrics"]
    assert (loss["a"]["n"], loss["b"]["n"]) == (2, 3)  # the failed seed is left out
    assert loss["b_minus_a"]["diff"] == 0 and loss["b_minus_a"]["resolved"] is False
    missing = json.loads(ok(aexp_cli(
        "compare", "lr=0.01,width=16", "lr=0.1,width=16", "--metrics", "loss:min", "--json",
        cwd=sweep.root,
    )))["metrics"][0]  # fmt: skip
    assert (missing["a"]["n"], missing["a"]["left_out"], missing["b"]["n"]) == (1, 1, 3)
    assert missing["b_minus_a"]["ci95"] is None
    out = tmp_path / "cmp.png"
    said = ok(aexp_cli(
        "compare", "lr=0.1,width=32", "lr=0.01,width=32", "--plot", str(out), cwd=sweep.root
    ))  # fmt: skip
    assert f"wrote {out}" in said and out.stat().st_size > 1000


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["runs", "--group-by", "nope"], "no selected job has the state-point key 'nope'"),
        (["runs", "--group-by", "--metrics", "loss:median"], "unknown reduction 'median'"),
        (["runs", "--group-by", "--sort", "nope"], "no group key, count or aggregate"),
        (["runs", "--group-by", "-q"], "--params and -q apply to jobs"),
        (["runs", "--metrics", "los:min"], "no selected run logged 'los' (asked as los:min)"),
        (["runs", "--group-by", "--metrics", "acc,los"], "no selected run logged 'los'"),
        (["best", "nope:min"], "has a value of 'nope:min'"),
        (["best", "loss:median"], "unknown reduction 'median'"),
        (["best", "loss"], "say which way is better: --min"),
        (["best", "loss:min", "--group-by", "nope"], "state-point key 'nope'"),
        (["compare", "lr=9", "lr=0.1"], "no job matches lr=9"),
        (["compare", "ffffffff", "lr=0.1"], "no job or tracker run with id 'ffffffff'"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(sweep: SimpleNamespace, args, fragment) -> None:
    bad_input(aexp_cli(*args, cwd=sweep.root), fragment, warnings=True)


def test_gap_direction_and_degenerate_cases() -> None:
    a, b = spread([1.0, 2.0, 3.0]), spread([2.0, 3.0, 4.0])
    g = gap(a, b)
    assert g.diff == pytest.approx(1.0) and g.df == pytest.approx(4.0)
    half = t_quantile(0.975, 4) * math.sqrt(2 / 3)
    assert [g.ci_low, g.ci_high] == pytest.approx([1 - half, 1 + half])
    assert gap(spread([1.0]), b).ci_low is None and gap(spread([]), b).diff is None


def test_every_document_matches_its_json_schema(sweep: SimpleNamespace) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="the validator of the check")
    from aexp.contract import schema_of

    documents = [
        aexp_cli("runs", "--metrics", "loss,loss:min", "--json", cwd=sweep.root),
        aexp_cli("runs", "--group-by", "--metrics", "loss:min,acc", "--json", cwd=sweep.root),
        aexp_cli("best", "loss:min", "--json", cwd=sweep.root),
        aexp_cli("best", "loss:min", "--where", "lr=0.01,width=16", "--json", cwd=sweep.root),
        aexp_cli("compare", "lr=0.1", "lr=0.01", "--json", cwd=sweep.root),
        aexp_cli("compare", sweep.ids["bound"], sweep.ids[(0.1, 16, 0)], "--json", cwd=sweep.root),
    ]
    names = []
    for result in documents:
        doc = json.loads(ok(result))
        jsonschema.validate(doc, schema_of(doc["schema"]))
        names.append(doc["schema"])
    assert names == [
        "aexp.runs/1", "aexp.runs.groups/1", "aexp.best/1", "aexp.best/1", "aexp.compare/1",
        "aexp.compare/1",
    ]  # fmt: skip


def test_seed_keys_come_from_signac_rc(sweep: SimpleNamespace, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(sweep.root, root)
    rc = root / "signac.rc"
    rc.write_text(rc.read_text() + "[results]\nseed_keys = seed, width\n")
    doc = json.loads(
        ok(aexp_cli("runs", "--group-by", "--metrics", "loss:min", "--json", cwd=root))
    )
    assert doc["keys"] == ["lr"] and doc["seed_keys"] == ["seed", "width"]
    assert [(g["config"], g["metrics"]["loss:min"]["n"]) for g in doc["groups"]] == [
        ({"lr": 0.01}, 4), ({"lr": 0.1}, 5)
    ]  # fmt: skip
    for text, fragment in (
        ("[dashboard]\ncolor_by = lr\n", "[dashboard] color_by in"),
        ("[dashboard]\nband = wide\n", "must be one of minmax, std, ci or empty"),
        ("[results]\nseed_keys = seed/x\n", "names 'seed/x', not a state-point key"),
    ):
        rc.write_text("[tracker]\nbackend = noop\nproject = demo\n" + text)
        bad_input(aexp_cli("runs", "--group-by", cwd=root), fragment)
