"""The figure of `aexp plot` and of the dashboard: one curve per run over its step axis.

    fig = plot_metric(load_curves(records, "loss"), "loss", by="lr", band="minmax", title=...)
    save_figure(fig, "loss.png")

What is drawn, and how a test finds it (each artist's `gid`):
    curve:<job id>       a Line2D per job: the metric over the step axis, attempts joined,
                         coloured by the job's value of `by` (one colour per job without `by`)
    preempted:<job id>   markers (x) where a preempted attempt ended (`Break`, aexp.results.curves)
    killed:<job id>      markers (open circles) where an attempt died without finishing
    mean:<by value>      with `band`: the mean over the jobs of that colour at each step
    band:<by value>      with `band`: min-max of those jobs ("minmax"), or the mean +- one sample
                         standard deviation ("std"), as a shaded area
At a step that only some jobs of a colour reached, the mean and band are over those jobs.
The x axis is the step (the journal's step axis, continued across attempts), the y axis the
metric; the legend names each colour, the marks, and the band; the title names the selection.

matplotlib is imported inside these functions only (the `[plot]` extra); no pyplot, so no GUI
backend and no global figure state: safe in a web server's threads.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aexp.results.curves import KILLED, PREEMPTED, Curve
from aexp.results.select import SelectionError, format_value, lookup

BANDS = ("minmax", "std")
FORMATS = (".png", ".svg", ".pdf")
INSTALL_HINT = "pip install 'agentic-experiments[plot]'"
_NO_VALUE = object()
_JOB_LEGEND_MAX = 12  # jobs named in the legend when there is no `by`


class PlotUnavailable(SelectionError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise PlotUnavailable (one sentence with the install command) without matplotlib."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise PlotUnavailable(f"plotting needs matplotlib; install it with: {INSTALL_HINT}")


def _colours(values: list[Any]) -> dict[Any, Any]:
    """A colour per distinct value: a sequential map for numbers, a qualitative one otherwise."""
    from matplotlib import colormaps

    numeric = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values if v is not _NO_VALUE
    )
    if numeric and len(values) > 1:
        cmap = colormaps["viridis"]
        return {v: cmap(0.9 * i / (len(values) - 1)) for i, v in enumerate(values)}
    cmap = colormaps["tab10" if len(values) <= 10 else "tab20"]
    return {v: cmap(i % cmap.N) for i, v in enumerate(values)}


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is _NO_VALUE:
        return (3, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1 if isinstance(value, str) else 2, format_value(value))


def _label(by: str | None, value: Any) -> str:
    return f"{by}={'-' if value is _NO_VALUE else format_value(value)}"


def _mean_band(
    curves: Sequence[Curve], band: str
) -> tuple[list[int], list[float], list[float], list[float]]:
    """(steps, mean, low, high) over the curves, at every step any of them has."""
    at: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in zip(curve.steps, curve.values, strict=True):
            if not math.isnan(value):
                at.setdefault(step, []).append(value)
    steps = sorted(at)
    means, lows, highs = [], [], []
    for step in steps:
        values = at[step]
        mean = statistics.fmean(values)
        if band == "std":
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            low, high = mean - spread, mean + spread
        else:
            low, high = min(values), max(values)
        means.append(mean)
        lows.append(low)
        highs.append(high)
    return steps, means, lows, highs


def plot_metric(
    series: Sequence[tuple[Any, Curve]],
    metric: str,
    *,
    by: str | None = None,
    band: str | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (8.0, 5.0),
    ax: Any = None,
    legend: bool = True,
) -> Any:
    """A matplotlib Figure of `series` ((JobRecord, Curve) pairs) as the module docstring says.

    `ax`: draw into these Axes (of a figure with several panels) instead of a new Figure of
    `figsize`; the Axes' figure is returned. `legend=False` leaves the legend out.
    Raises SelectionError for an unknown `band`, PlotUnavailable without matplotlib.
    """
    require_matplotlib()
    if band is not None and band not in BANDS:
        raise SelectionError(f"unknown band {band!r}; use {' or '.join(BANDS)}.")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.add_subplot()
    fig = ax.figure
    values = {
        record.job_id: (lookup(record.statepoint, by, _NO_VALUE) if by else record.job_id)
        for record, _ in series
    }
    distinct = sorted(dict.fromkeys(values.values()), key=_sort_key)
    colour = _colours(distinct)
    first: dict[Any, Any] = {}  # the first line of each colour: its legend entry
    thin = band is not None
    for record, curve in series:
        value = values[record.job_id]
        label = "_nolegend_"
        if by and value not in first:
            count = sum(1 for v in values.values() if v == value)
            label = f"{_label(by, value)} ({count} job{'s' if count != 1 else ''})"
        elif not by and len(series) <= _JOB_LEGEND_MAX:
            label = f"job {record.job_id[:8]}"
        (line,) = ax.plot(
            curve.steps,
            curve.values,
            color=colour[value],
            linewidth=0.9 if thin else 1.4,
            alpha=0.45 if thin else 0.95,
            label=label,
        )
        line.set_gid(f"curve:{record.job_id}")
        first.setdefault(value, line)
        for kind, marker in ((PREEMPTED, "x"), (KILLED, "o")):
            marks = [b for b in curve.breaks if b.kind == kind]
            if not marks:
                continue
            (dots,) = ax.plot(
                [b.step for b in marks],
                [b.value for b in marks],
                linestyle="none",
                marker=marker,
                markersize=8,
                markeredgewidth=1.8,
                markerfacecolor="none" if kind == KILLED else colour[value],
                color="black",
                label="_nolegend_",
            )
            dots.set_gid(f"{kind}:{record.job_id}")
    if band is not None:
        groups: dict[str, tuple[Any, list[Curve]]] = {}
        if by:
            for value in distinct:
                curves = [c for r, c in series if values[r.job_id] == value]
                groups[_label(by, value)] = (colour[value], curves)
        else:
            groups["all jobs"] = ("black", [c for _, c in series])
        for name, (tint, curves) in groups.items():
            steps, means, lows, highs = _mean_band(curves, band)
            (mean,) = ax.plot(
                steps, means, color=tint, linewidth=2.6, label=f"{name}: mean of {len(curves)}"
            )
            mean.set_gid(f"mean:{name}")
            area = ax.fill_between(steps, lows, highs, color=tint, alpha=0.18, linewidth=0)
            area.set_gid(f"band:{name}")
    # Legend: the colours in their sorted order (curves are drawn in the records' order), then
    # the means, the marks and the band.
    handles, labels = ax.get_legend_handles_labels()
    rank = {id(first[v]): i for i, v in enumerate(distinct) if v in first}
    order = sorted(range(len(handles)), key=lambda i: rank.get(id(handles[i]), len(rank) + i))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    kinds = {b.kind for _, c in series for b in c.breaks}
    if PREEMPTED in kinds:
        handles.append(Line2D([], [], linestyle="none", marker="x", color="black", mew=1.8))
        labels.append("preempted: attempt ended here")
    if KILLED in kinds:
        handles.append(
            Line2D([], [], linestyle="none", marker="o", color="black", markerfacecolor="none")
        )
        labels.append("killed: attempt died here")
    if band is not None:
        from matplotlib.patches import Patch

        handles.append(Patch(color="grey", alpha=0.3))
        labels.append("band: min-max" if band == "minmax" else "band: mean ± 1 std (sample)")
    if handles and legend:
        ax.legend(handles, labels, fontsize="small", loc="best")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title or metric, fontsize="medium")
    ax.grid(True, alpha=0.3)
    return fig


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write `fig` to `path` (.png, .svg or .pdf, by its suffix); returns the path.

    Raises SelectionError for another suffix, OSError when the file cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise SelectionError(
            f"cannot write {path.name}: the file name must end in {', '.join(FORMATS)}."
        )
    fig.savefig(path, dpi=120)
    return path


__all__ = [
    "BANDS",
    "FORMATS",
    "INSTALL_HINT",
    "PlotUnavailable",
    "plot_metric",
    "require_matplotlib",
    "save_figure",
]
