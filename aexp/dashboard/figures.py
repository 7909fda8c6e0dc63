"""The dashboard's figures as SVG: a job's metric curves (inline in its page) and the sweep's
plot (an image the project page loads from `/aexp/sweep.svg?...` after the page itself).

Both are aexp.results.plot's figure: one curve per run over its step axis, attempts joined,
preempted attempts marked. Each curve keeps its `gid` (`curve:<job id>`, `preempted:<job id>`)
as the `id` of its SVG group, so a browser test finds the curve in the page. Rendering holds a
lock: matplotlib's settings (rcParams) are process-wide, and the web server answers requests
in threads.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import Any

from aexp.journal import read_journal
from aexp.results import JobRecord
from aexp.results.curves import curve_of, load_curves, metric_keys

MAX_JOB_METRICS = 4  # metrics drawn on a job's page when none were configured
_lock = threading.Lock()


def _svg(fig: Any) -> str:
    """The figure as an inline <svg> element (text kept as text: smaller, searchable)."""
    from matplotlib import rc_context

    out = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):
        fig.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]


def job_figure(record: JobRecord, metrics: Sequence[str] | None) -> tuple[str | None, list[str]]:
    """(inline SVG of the job's metric curves, the metrics drawn); (None, []) without any."""
    if not record.journal:
        return None, []
    try:
        journal = read_journal(record.journal)
    except FileNotFoundError:
        return None, []
    keys = list(metrics) if metrics else metric_keys(journal)[:MAX_JOB_METRICS]
    curves = [(key, curve_of(journal, key)) for key in keys]
    curves = [(key, curve) for key, curve in curves if curve.steps]
    if not curves:
        return None, []
    from matplotlib.figure import Figure

    from aexp.results.plot import plot_metric

    with _lock:
        # One figure, one panel per metric: a figure's fixed cost (~0.1 s) is paid once per job.
        fig = Figure(figsize=(4.0 * len(curves), 2.7))
        fig.subplots_adjust(left=0.1 / len(curves), right=0.98, bottom=0.18, top=0.88, wspace=0.3)
        panels = fig.subplots(1, len(curves), squeeze=False)[0]
        for ax, (key, curve) in zip(panels, curves, strict=True):
            plot_metric([(record, curve)], key, title=key, ax=ax, legend=False)
            for line in ax.get_lines():
                gid = line.get_gid()
                if gid:  # unique in a page that shows several metrics of one job
                    line.set_gid(f"{gid}:{key}")
        svg = _svg(fig)
    return svg, [key for key, _ in curves]


def sweep_figure(
    records: Sequence[JobRecord],
    metric: str,
    *,
    by: str | Sequence[str] | None,
    band: str | None,
    title: str,
    max_curves: int,
) -> tuple[str, int]:
    """(SVG document of the sweep's plot, curves drawn). At most `max_curves` jobs are read and
    drawn (the first ones in the table's order); the title says so when there were more."""
    from aexp.results.plot import plot_metric

    bound = [r for r in records if r.run_id]
    shown = bound[:max_curves]
    series = load_curves(shown, metric)
    if len(bound) > len(shown):
        title += f" (the first {len(shown)} of {len(bound)} runs)"
    with _lock:
        fig = plot_metric(series, metric, by=by or None, band=band or None, title=title)
        if not series:
            fig.axes[0].text(
                0.5, 0.5, f"no run logged {metric!r}", ha="center", transform=fig.axes[0].transAxes
            )
        out = io.StringIO()
        from matplotlib import rc_context

        with rc_context({"svg.fonttype": "none"}):
            fig.savefig(out, format="svg")
    return out.getvalue(), len(series)


__all__ = ["MAX_JOB_METRICS", "job_figure", "sweep_figure"]
