"""The curves figure of `aexp plot`, `aexp compare --plot` and the dashboard: one curve per run
over its step axis (or its running wall time, or another metric), coloured by configuration.

    fig = plot_metric(load_curves(records, "loss"), "loss", by=("lr", "hidden"), band="ci",
                      logy=True, title=...)
    save_figure(fig, "loss.png")

What is drawn, and how a test finds it (each artist's `gid`):
    curve:<job id>       a Line2D per job: the metric over x, attempts joined, coloured by the
                         job's values of the `by` keys (one colour per job without `by`)
    preempted:<job id>   markers (x) where a preempted attempt ended (`Break`, aexp.results.curves)
    killed:<job id>      markers (open circles) where an attempt died without finishing
    mean:<label>         with `band`: the mean over the jobs of that colour (`lr=0.1, hidden=64`)
    band:<label>         with `band`: a shaded area: the jobs' min-max ("minmax"), the mean +- one
                         sample standard deviation ("std"), or the 95 % Student's t interval of
                         the mean ("ci")
Where x is the step (or another metric with whole-number values, like an epoch), the mean and
band are taken at each x some jobs of the colour reached, over those jobs; where x is time (or
another metric with fractional values) each curve is interpolated linearly onto 200 points,
and each point's mean and band are over the curves that span it. The legend names each colour
(and its number of jobs), the marks and the band; the title names the selection.

matplotlib is imported inside these functions only (the `[plot]` extra); no pyplot, so no GUI
backend and no global figure state: safe in a web server's threads.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from aexp.results.curves import KILLED, PREEMPTED, STEP, TIME, Curve
from aexp.results.plotstyle import (
    FORMATS,
    INSTALL_HINT,
    PlotUnavailable,
    check_out,
    colours,
    config_of,
    label_of,
    require_matplotlib,
    save_figure,
    value_order,
)
from aexp.results.select import SelectionError
from aexp.results.spread import CONFIDENCE, t_quantile

BANDS = ("minmax", "std", "ci")
BAND_NAMES = {
    "minmax": "band: min-max",
    "std": "band: mean ± 1 std (sample)",
    "ci": f"band: {CONFIDENCE:.0%} CI of the mean (t)",
}
GRID = 200  # points of the shared x grid where x values are not whole numbers
_JOB_LEGEND_MAX = 12  # jobs named in the legend when there is no `by`


def x_label(x: str) -> str:
    """The x axis' label."""
    return {STEP: "step", TIME: "wall time, running (s)"}.get(x, x)


def _whole(curves: Sequence[Curve]) -> bool:
    return all(float(v).is_integer() for c in curves for v in c.x)


def _stats(values: list[float], band: str) -> tuple[float, float, float]:
    """(mean, low, high) of the band over `values`."""
    mean = statistics.fmean(values)
    if band == "minmax":
        return mean, min(values), max(values)
    if len(values) < 2:
        return mean, mean, mean
    spread = statistics.stdev(values)
    if band == "ci":
        spread *= t_quantile(0.5 + CONFIDENCE / 2, len(values) - 1) / math.sqrt(len(values))
    return mean, mean - spread, mean + spread


def mean_band(
    curves: Sequence[Curve], band: str
) -> tuple[list[float], list[float], list[float], list[float]]:
    """(x, mean, low, high) over the curves (module docstring: exact x or a shared grid)."""
    at: dict[float, list[float]] = {}
    if _whole(curves):
        for curve in curves:
            for x, value in zip(curve.x, curve.values, strict=True):
                if not math.isnan(value):
                    at.setdefault(x, []).append(value)
    else:
        import numpy as np

        spans = [(c, np.asarray(c.x), np.asarray(c.values)) for c in curves if len(c.x)]
        lo = min(float(x[0]) for _, x, _ in spans)
        hi = max(float(x[-1]) for _, x, _ in spans)
        for point in np.linspace(lo, hi, GRID):
            values = [float(np.interp(point, x, y)) for _, x, y in spans if x[0] <= point <= x[-1]]
            at[float(point)] = [v for v in values if not math.isnan(v)]  # [] breaks the line
    xs = sorted(at)
    means, lows, highs = [], [], []
    for x in xs:
        mean, low, high = _stats(at[x], band) if at[x] else (math.nan,) * 3
        means.append(mean)
        lows.append(low)
        highs.append(high)
    return xs, means, lows, highs


def _draw_curve(ax: Any, record: Any, curve: Curve, tint: Any, label: str, thin: bool) -> Any:
    (line,) = ax.plot(
        curve.x,
        curve.values,
        color=tint,
        linewidth=0.9 if thin else 1.4,
        alpha=0.45 if thin else 0.95,
        label=label,
    )
    line.set_gid(f"curve:{record.job_id}")
    for kind, marker in ((PREEMPTED, "x"), (KILLED, "o")):
        marks = [b for b in curve.breaks if b.kind == kind and b.x is not None]
        if not marks:
            continue
        (dots,) = ax.plot(
            [b.x for b in marks],
            [b.value for b in marks],
            linestyle="none",
            marker=marker,
            markersize=8,
            markeredgewidth=1.8,
            markerfacecolor="none" if kind == KILLED else tint,
            color="black",
            label="_nolegend_",
        )
        dots.set_gid(f"{kind}:{record.job_id}")
    return line


def _draw_groups(
    ax: Any,
    groups: list[tuple[str, Any, list[tuple[Any, Curve]]]],
    *,
    band: str | None,
    name_jobs: bool,
    band_groups: list[tuple[str, Any, list[tuple[Any, Curve]]]] | None = None,
    legend: bool = True,
) -> None:
    """Draw each group's curves in its colour, then (with `band`) the mean and band of each of
    `band_groups` (default: the groups themselves), and the legend in the groups' order."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    labels: list[str] = []
    for label, tint, series in groups:
        first = None
        for record, curve in series:
            name = f"job {record.job_id[:8]}" if name_jobs else "_nolegend_"
            line = _draw_curve(ax, record, curve, tint, name, band is not None)
            first = first or line
            if name_jobs:
                handles.append(line)
                labels.append(name)
        if label and first is not None and (band is None or band_groups is not None):
            count = len(series)
            handles.append(first)
            labels.append(f"{label} ({count} job{'s' if count != 1 else ''})")
    if band is not None:
        for label, tint, series in groups if band_groups is None else band_groups:
            curves = [c for _, c in series]
            if not curves:
                continue
            name = label or "all jobs"
            xs, means, lows, highs = mean_band(curves, band)
            (mean,) = ax.plot(xs, means, color=tint, linewidth=2.6)
            mean.set_gid(f"mean:{name}")
            handles.append(mean)
            count = len(curves)
            labels.append(f"{name}: mean of {count} job{'s' if count != 1 else ''}")
            area = ax.fill_between(xs, lows, highs, color=tint, alpha=0.18, linewidth=0)
            area.set_gid(f"band:{name}")
    kinds = {b.kind for _, _, series in groups for _, c in series for b in c.breaks}
    if PREEMPTED in kinds:
        handles.append(Line2D([], [], linestyle="none", marker="x", color="black", mew=1.8))
        labels.append("preempted: attempt ended here")
    if KILLED in kinds:
        handles.append(
            Line2D([], [], linestyle="none", marker="o", color="black", markerfacecolor="none")
        )
        labels.append("killed: attempt died here")
    if band is not None:
        handles.append(Patch(color="grey", alpha=0.3))
        labels.append(BAND_NAMES[band])
    if handles and legend:
        place = {"loc": "best"}
        if len(handles) > 6:  # beside the axes, where it hides no curve
            place = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}
        ax.legend(handles, labels, fontsize="small", ncol=2 if len(handles) > 24 else 1, **place)


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _finish(ax: Any, metric: str, x: str, logy: bool, title: str | None) -> Any:
    ax.set_xlabel(x_label(x))
    if x == STEP:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title or metric, fontsize="medium")
    ax.grid(True, alpha=0.3)
    return ax.figure


def plot_metric(
    series: Sequence[tuple[Any, Curve]],
    metric: str,
    *,
    by: str | Sequence[str] | None = None,
    band: str | None = None,
    logy: bool = False,
    title: str | None = None,
    figsize: tuple[float, float] = (8.0, 5.0),
    ax: Any = None,
    legend: bool = True,
) -> Any:
    """A matplotlib Figure of `series` ((JobRecord, Curve) pairs, the curves over the x axis
    they were made for) as the module docstring says. `by`: a state-point key or several (one
    colour per distinct combination of their values).

    `ax`: draw into these Axes (of a figure with several panels) instead of a new Figure of
    `figsize`; the Axes' figure is returned. `legend=False` leaves the legend out.
    Raises SelectionError for an unknown `band`, PlotUnavailable without matplotlib.
    """
    require_matplotlib()
    if band is not None and band not in BANDS:
        raise SelectionError(f"unknown band {band!r}; use {', '.join(BANDS)}.")
    keys = (by,) if isinstance(by, str) else tuple(by or ())
    x = series[0][1].x_axis if series else STEP
    ax = _axes(ax, figsize)
    band_groups = None
    if keys:
        configs = {r.job_id: config_of(r, keys) for r, _ in series}
        distinct = sorted(set(configs.values()), key=lambda v: [value_order(x) for x in v])
        tint = colours(distinct)
        groups = []
        for value in distinct:
            members = [(r, c) for r, c in series if configs[r.job_id] == value]
            groups.append((label_of(keys, value), tint[value], members))
    else:  # a colour per job; the band, if any, over every job, in black
        by_job = colours([r.job_id for r, _ in series])
        groups = [("", by_job[r.job_id], [(r, c)]) for r, c in series]
        band_groups = [("all jobs", "black", list(series))]
    name_jobs = not keys and len(series) <= _JOB_LEGEND_MAX
    _draw_groups(ax, groups, band=band, name_jobs=name_jobs, band_groups=band_groups, legend=legend)
    return _finish(ax, metric, x, logy, title)


def plot_sides(
    sides: Sequence[tuple[str, Sequence[tuple[Any, Curve]]]],
    metric: str,
    *,
    logy: bool = False,
    title: str | None = None,
    figsize: tuple[float, float] = (8.0, 5.0),
) -> Any:
    """Two (or more) labelled sets of runs in one figure (`aexp compare --plot`): a colour per
    side; a side of several runs also gets its mean and 95 % t band."""
    require_matplotlib()
    x = next((c.x_axis for _, series in sides for _, c in series), STEP)
    ax = _axes(None, figsize)
    tint = colours([label for label, _ in sides])
    groups = [(label, tint[label], list(series)) for label, series in sides]
    band = "ci" if any(len(series) > 1 for _, series in sides) else None
    _draw_groups(ax, groups, band=band, name_jobs=False)
    return _finish(ax, metric, x, logy, title)


__all__ = [
    "BANDS",
    "FORMATS",
    "INSTALL_HINT",
    "PlotUnavailable",
    "check_out",
    "mean_band",
    "plot_metric",
    "plot_sides",
    "require_matplotlib",
    "save_figure",
    "x_label",
]
