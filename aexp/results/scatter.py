"""Figures of a hyperparameter against an outcome: one point per run (`aexp plot --scatter`) and
the whole sweep as parallel coordinates (`aexp plot --parallel`).

    fig = plot_scatter(points, "lr", "loss:min", logx=True)
    fig = plot_parallel(points, ["lr", "hidden"], "loss:min")

`points` are (JobRecord, value) pairs: the run and its value of the metric. What is drawn, and
how a test finds it (gids):
    point:<job id>    scatter: the run at (its value of KEY, its value of the metric); filled
                      for a finished run, hollow (and left out of the means) for any other
    mean:<metric>     scatter: the mean over the finished runs at each value of KEY, joined
    run:<job id>      parallel: the run's line through one axis per key and the metric,
                      coloured by its metric value (finished runs only)
A key whose values are not all numbers is drawn as categories, in sorted order. Numeric axes of
the parallel plot are scaled to their range (logarithmically for positive values spanning two
decades or more, like learning rates).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from aexp.results.plotstyle import NO_VALUE, require_matplotlib, value_order
from aexp.results.select import format_value, lookup
from aexp.results.spread import finite
from aexp.schema import FINISHED


def _positions(values: Sequence[Any]) -> tuple[dict[Any, float], list[str] | None]:
    """Each distinct value's position on an axis, and the tick labels of a categorical one
    (None for numbers, which are their own positions)."""
    distinct = sorted({_key(v) for v in values}, key=lambda k: value_order(k[1]))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for _, v in distinct):
        return {(kind, v): float(v) for kind, v in distinct}, None
    return {k: float(i) for i, k in enumerate(distinct)}, [
        "-" if v is NO_VALUE else format_value(v) for _, v in distinct
    ]


def _key(value: Any) -> tuple[str, Any]:
    """A hashable stand-in of a JSON value (lists and objects by their JSON text)."""
    if isinstance(value, list | dict):
        import json

        return ("json", json.dumps(value, sort_keys=True))
    return (type(value).__name__, value)


def plot_scatter(
    points: Sequence[tuple[Any, Any]],
    key: str,
    metric: str,
    *,
    logx: bool = False,
    logy: bool = False,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 5.0),
) -> Any:
    """One point per run: its value of state-point `key` against its value of `metric`, and the
    mean over the finished runs per value of `key` (module docstring)."""
    require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    shown = [(r, v) for r, v in points if finite(v)]
    xs = [lookup(r.statepoint, key, NO_VALUE) for r, _ in shown]
    where, ticks = _positions(xs)
    at: dict[float, list[float]] = {}
    for (record, value), x in zip(shown, xs, strict=True):
        position = where[_key(x)]
        done = record.state == FINISHED
        (dot,) = ax.plot(
            [position],
            [value],
            linestyle="none",
            marker="o",
            markersize=6,
            color="tab:blue" if done else "tab:grey",
            markerfacecolor="tab:blue" if done else "none",
            alpha=0.7,
        )
        dot.set_gid(f"point:{record.job_id}")
        if done:
            at.setdefault(position, []).append(float(value))
    handles = [
        Line2D([], [], linestyle="none", marker="o", color="tab:blue", label="finished run"),
    ]
    if any(r.state != FINISHED for r, _ in shown):
        handles.append(
            Line2D([], [], linestyle="none", marker="o", color="tab:grey",
                   markerfacecolor="none", label="other run (not in the mean)")
        )  # fmt: skip
    if at:
        order = sorted(at)
        (mean,) = ax.plot(
            order,
            [statistics.fmean(at[p]) for p in order],
            color="tab:red",
            marker="D",
            linewidth=2,
            label=f"mean of the finished runs per {key}",
        )
        mean.set_gid(f"mean:{metric}")
        handles.append(mean)
    if ticks is not None:
        ax.set_xticks(range(len(ticks)), ticks)
    elif logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.legend(handles=handles, fontsize="small", loc="best")
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} against {key}", fontsize="medium")
    ax.grid(True, alpha=0.3)
    return fig


def _axis(values: list[Any]) -> tuple[list[float], list[tuple[float, str]], str]:
    """One parallel axis: each value's height in [0, 1], the ticks (height, label), the scale."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numbers:
        where, labels = _positions(values)
        top = max(len(labels or ()) - 1, 1)
        heights = [where[_key(v)] / top for v in values]
        return heights, [(i / top, text) for i, text in enumerate(labels or ())], "categories"
    low, high = min(values), max(values)
    scale = "linear"
    transform = float
    if low > 0 and high / low >= 100:
        scale, transform = "log", math.log10
    lo, hi = transform(low), transform(high)
    span = (hi - lo) or 1.0
    heights = [(transform(v) - lo) / span for v in values]
    distinct = sorted(set(values))
    shown = distinct if len(distinct) <= 8 else [low, high]
    return heights, [((transform(v) - lo) / span, f"{v:.6g}") for v in shown], scale


def plot_parallel(
    points: Sequence[tuple[Any, Any]],
    keys: Sequence[str],
    metric: str,
    *,
    title: str | None = None,
    figsize: tuple[float, float] = (9.0, 5.0),
) -> Any:
    """Parallel coordinates: one axis per state-point key and one for `metric`, one line per
    finished run with a finite value, coloured by that value (module docstring)."""
    require_matplotlib()
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    runs = [(r, float(v)) for r, v in points if r.state == FINISHED and finite(v)]
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    names = [*keys, metric]
    columns = [[lookup(r.statepoint, k, NO_VALUE) for r, _ in runs] for k in keys]
    columns.append([v for _, v in runs])
    axes = [_axis(column) if column else ([], [], "linear") for column in columns]
    values = [v for _, v in runs]
    norm = Normalize(min(values, default=0.0), max(values, default=1.0))
    cmap = colormaps["viridis"]
    for i, (record, value) in enumerate(runs):
        (line,) = ax.plot(
            range(len(names)),
            [heights[i] for heights, _, _ in axes],
            color=cmap(norm(value)),
            alpha=0.6,
            linewidth=1.2,
        )
        line.set_gid(f"run:{record.job_id}")
    for position, (_, ticks, scale) in enumerate(axes):
        ax.axvline(position, color="black", linewidth=0.8)
        for height, text in ticks:
            ax.text(position + 0.03, height, text, fontsize="x-small", va="center")
        if scale == "log":
            ax.text(position, -0.08, "(log)", fontsize="x-small", ha="center")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(names) - 0.6)
    ax.set_ylim(-0.12, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    ax.set_title(
        title or f"{metric} over the sweep: {len(runs)} finished run(s)", fontsize="medium"
    )
    return fig


__all__ = ["plot_parallel", "plot_scatter"]
