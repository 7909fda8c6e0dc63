"""The figures of `aexp plot` and `aexp compare --plot` checked as figures: the matplotlib
objects before they are saved (lines and their data, legend entries, axis labels and scales,
the artists' gids) and the files written, read back with PIL (format and size in pixels).

The data is tests/known_sweep.py's sweep (every value known), plus a journal written here by
hand with chosen timestamps, for the running wall-time axis.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import aexp_cli, ok
from known_sweep import FINAL, STEPS, T2, build_sweep, loss_at

from aexp.journal import read_journal
from aexp.results import JournalStats, iter_records, parse_metric
from aexp.results.curves import TIME, curve_of, load_curves

pytest.importorskip("matplotlib", reason="needs matplotlib (the [plot] extra)")
from PIL import Image

from aexp.results.plot import plot_metric, plot_sides
from aexp.results.scatter import plot_parallel, plot_scatter


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return build_sweep(tmp_path_factory.mktemp("plots") / "project")


def cli(*args: str, cwd: Path) -> str:
    return ok(aexp_cli(*args, cwd=cwd))


def legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def by_gid(ax, prefix: str) -> dict[str, object]:
    return {
        line.get_gid().split(":", 1)[1]: line
        for line in ax.get_lines()
        if (line.get_gid() or "").startswith(prefix + ":")
    }


def test_curves_by_two_keys_with_a_ci_band_on_a_log_axis(sweep: SimpleNamespace) -> None:
    records = list(iter_records(sweep.root))
    fig = plot_metric(
        load_curves(records, "loss"), "loss", by=("lr", "width"), band="ci", logy=True, title="t"
    )
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_yscale(), ax.get_title()) == (
        "step", "loss", "log", "t"
    )  # fmt: skip
    # One colour and one mean per configuration (its label names it), then the band.
    assert legend(ax) == [
        "lr=0.01, width=16: mean of 2 jobs",  # the run without a loss draws no curve
        "lr=0.01, width=32: mean of 3 jobs",
        "lr=0.1, width=16: mean of 3 jobs",  # the bound, never-run job neither
        "lr=0.1, width=32: mean of 3 jobs",
        "preempted: attempt ended here",  # lr=0.01, width=16, seed 1
        "band: 95% CI of the mean (t)",
    ]
    curves = by_gid(ax, "curve")
    assert len(curves) == 11
    wide = [sweep.ids[(0.1, 16, s)] for s in range(3)]
    assert len({curves[j].get_color() for j in wide}) == 1  # one configuration, one colour
    assert curves[wide[0]].get_color() != curves[sweep.ids[(0.1, 32, 0)]].get_color()
    # The mean and the band of lr=0.1, width=16 at each step: known values.
    (mean,) = [line for gid, line in by_gid(ax, "mean").items() if gid == "lr=0.1, width=16"]
    finals = [FINAL[(0.1, 16, s)][0] for s in range(3)]
    expected = [statistics.fmean(loss_at(f, step) for f in finals) for step in range(STEPS)]
    assert list(mean.get_xdata()) == [0, 1, 2]
    assert list(mean.get_ydata()) == pytest.approx(expected, rel=1e-12)
    (band,) = [c for c in ax.collections if c.get_gid() == "band:lr=0.1, width=16"]
    ys = band.get_paths()[0].vertices[:, 1]
    half = T2 * 0.02 / math.sqrt(3)  # the three seeds differ by 0.02 at every step
    assert min(ys) == pytest.approx(expected[-1] - half, rel=1e-9)
    assert max(ys) == pytest.approx(expected[0] + half, rel=1e-9)


def test_curves_over_another_metric(sweep: SimpleNamespace) -> None:
    records = [r for r in iter_records(sweep.root) if r.statepoint["lr"] == 0.1]
    fig = plot_metric(load_curves(records, "loss", x="acc"), "loss", by="width")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "acc" and ax.get_xscale() == "linear"
    line = by_gid(ax, "curve")[sweep.ids[(0.1, 32, 1)]]
    assert list(line.get_xdata()) == pytest.approx([0.5, 0.6, 0.7])
    assert list(line.get_ydata()) == pytest.approx([loss_at(0.27, s) for s in range(STEPS)])
    assert legend(ax) == ["width=16 (3 jobs)", "width=32 (3 jobs)"]


def _journal_with_a_queue_wait(path: Path) -> None:
    """Attempt 1 logs at 1 s and 2 s, is preempted at 3 s; attempt 2 starts an hour later and
    logs 1 s and 2 s after its start."""
    events = [
        ("2026-01-01T00:00:00+00:00", {"event": "init_run", "run_id": "abc"}),
        ("2026-01-01T00:00:00+00:00", {"event": "resume_run", "attempt": 1}),
        ("2026-01-01T00:00:01+00:00", {"event": "log", "metrics": {"loss": 4.0}, "step": 0}),
        ("2026-01-01T00:00:02+00:00", {"event": "log", "metrics": {"loss": 3.0}, "step": 1}),
        ("2026-01-01T00:00:03+00:00", {"event": "finish", "exit_code": 143, "preempted": True}),
        ("2026-01-01T01:00:00+00:00", {"event": "resume_run", "attempt": 2}),
        ("2026-01-01T01:00:01+00:00", {"event": "log", "metrics": {"loss": 2.0}, "step": 2}),
        ("2026-01-01T01:00:02+00:00", {"event": "log", "metrics": {"loss": 1.0}, "step": 3}),
        ("2026-01-01T01:00:03+00:00", {"event": "finish", "exit_code": 0, "preempted": False}),
    ]
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps({"timestamp": t, **e}) + "\n" for t, e in events))


def test_wall_time_leaves_out_the_wait_between_attempts(tmp_path: Path) -> None:
    path = tmp_path / "tracker_log" / "abc" / "events.jsonl"
    _journal_with_a_queue_wait(path)
    curve = curve_of(read_journal(path), "loss", x=TIME)
    assert curve.x == [1.0, 2.0, 4.0, 5.0]  # 3 s of attempt 1, then 1 s and 2 s into attempt 2
    assert [(b.step, b.x, b.kind) for b in curve.breaks] == [(1, 2.0, "preempted")]
    record = SimpleNamespace(job_id="f" * 32, statepoint={})
    fig = plot_metric([(record, curve)], "loss")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "wall time, running (s)"
    marks = by_gid(ax, "preempted")["f" * 32]
    assert list(marks.get_xdata()) == [2.0] and list(marks.get_ydata()) == [3.0]


def test_scatter_one_point_per_run_and_the_mean_per_value(sweep: SimpleNamespace) -> None:
    stats = JournalStats(sweep.root)
    spec = parse_metric("loss:min")
    points = [(r, stats.values(r, [spec])[spec.name]) for r in iter_records(sweep.root)]
    fig = plot_scatter(points, "lr", "loss:min", logx=True)
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale()) == ("lr", "loss:min", "log")
    dots = by_gid(ax, "point")
    assert len(dots) == 11  # every run with a value: 12 runs, one without a loss
    failed = dots[sweep.ids[(0.1, 32, 2)]]
    assert failed.get_markerfacecolor() == "none"  # drawn hollow, not in the mean
    (mean,) = by_gid(ax, "mean").values()
    assert list(mean.get_xdata()) == [0.01, 0.1]
    assert list(mean.get_ydata()) == pytest.approx(
        [
            statistics.fmean([0.40, 0.26, 0.26, 0.26]),
            statistics.fmean([0.30, 0.32, 0.34, 0.25, 0.27]),
        ]
    )
    assert legend(ax) == [
        "finished run", "other run (not in the mean)", "mean of the finished runs per lr"
    ]  # fmt: skip


def test_parallel_coordinates_one_line_per_finished_run(sweep: SimpleNamespace) -> None:
    stats = JournalStats(sweep.root)
    spec = parse_metric("loss:min")
    points = [(r, stats.values(r, [spec])[spec.name]) for r in iter_records(sweep.root)]
    fig = plot_parallel(points, ["lr", "width"], "loss:min")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lr", "width", "loss:min"]
    lines = by_gid(ax, "run")
    assert len(lines) == 9  # finished runs with a value
    best = lines[sweep.ids[(0.1, 32, 0)]]  # the lowest loss: the bottom of the last axis
    assert list(best.get_ydata())[-1] == pytest.approx(0.0)
    assert fig.axes[1].get_ylabel() == "loss:min"  # the colour bar


def test_plot_files_are_images_of_the_asked_size(sweep: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    said = cli("plot", "loss", "--by", "lr,width", "--band", "ci", "--logy", "--out", str(out),
               cwd=sweep.root)  # fmt: skip
    assert said.strip() == (
        f"wrote {out}: 11 curve(s) of loss, mean and 95% CI band, 1 interrupted attempt(s) marked"
    )
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (960, 600)  # 8 x 5 in at 120 dpi
    scatter = tmp_path / "scatter.png"
    said = cli("plot", "--scatter", "lr", "loss:min", "--logx", "--out", str(scatter),
               cwd=sweep.root)  # fmt: skip
    assert said.strip() == f"wrote {scatter}: 11 run(s), the mean of 9 finished per lr"
    with Image.open(scatter) as image:
        assert image.size == (840, 600)
    parallel = tmp_path / "parallel.svg"
    said = cli("plot", "--parallel", "loss:min", "--out", str(parallel), cwd=sweep.root)
    assert said.strip() == f"wrote {parallel}: 9 finished run(s) across lr, width, loss:min"
    assert parallel.read_text().count('id="run:') == 9


def test_compare_draws_both_sides_with_their_means(sweep: SimpleNamespace) -> None:
    sides = []
    for label, lr in (("A: lr=0.1", 0.1), ("B: lr=0.01", 0.01)):
        records = [r for r in iter_records(sweep.root) if r.statepoint["lr"] == lr]
        sides.append((label, load_curves(records, "loss")))
    fig = plot_sides(sides, "loss", title="loss: A vs B")
    (ax,) = fig.axes
    assert legend(ax) == [
        "A: lr=0.1: mean of 6 jobs", "B: lr=0.01: mean of 5 jobs",
        "preempted: attempt ended here", "band: 95% CI of the mean (t)",
    ]  # fmt: skip
    colours = {gid: line.get_color() for gid, line in by_gid(ax, "mean").items()}
    assert len(set(colours.values())) == 2
    assert ax.get_title() == "loss: A vs B" and ax.get_xlabel() == "step"
