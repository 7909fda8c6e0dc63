"""The cards of a job's page: its run (state, backends, links, attempts and their exit codes from
the journal, last metrics, earlier runs and the files kept with them) and its metric curves.
"""

from __future__ import annotations

import os
from typing import Any

from flask import request, url_for
from markupsafe import Markup

from aexp.dashboard.cards import AexpCard
from aexp.dashboard.figures import job_figure
from aexp.dashboard.html import definitions, link, note, page_assets, state_tag, table
from aexp.dashboard.routes import add_job_curves_route
from aexp.journal import JOURNAL_FILE, read_journal
from aexp.results import read_record
from aexp.trackers import ADAPTERS


def kept_files(job_path: str, run_id: str) -> list[str]:
    """The files a rerun moved beside an earlier run's journal (`tracker_log/<run id>/`): its
    checkpoints, error.log and result files."""
    try:
        names = sorted(os.listdir(os.path.join(job_path, "tracker_log", run_id)))
    except OSError:
        return []
    return [name for name in names if name != JOURNAL_FILE]


def _outcome(attempt: Any, last: bool) -> str:
    if attempt.finished:
        if attempt.preempted:
            return "preempted"
        return "finished" if attempt.exit_code == 0 else "failed"
    return "running" if last else "killed (no finish)"


def _synced(record: Any) -> str | None:
    """Per backend synced from a login node, when it received the run (as `aexp show` says
    it); None where no backend is synced that way."""
    if record.unsynced is None:
        return None
    from aexp.binding import backend_parts

    parts = backend_parts(record.binding)
    return ", ".join(
        f"{name} {_when(parts[name].get('synced_at')) or 'not yet'}"
        if name not in record.unsynced
        else f"{name} not yet"
        for name in parts
        if name in record.unsynced or parts[name].get("synced_at")
    )


def _when(timestamp: str | None) -> str | None:
    """An ISO-8601 UTC timestamp to the second, readable: 2026-11-29 17:36:42 UTC."""
    if not timestamp:
        return None
    return timestamp[:19].replace("T", " ") + " UTC"


class RunCard(AexpCard):
    """The job's run: state, backends, links, attempts, last metrics, earlier runs."""

    def __init__(self, name: str = "Run", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)

    def get_cards(self, job: Any) -> list[dict[str, Any]]:
        record = read_record(job, job.cached_statepoint, self.options.group_by)
        if record.error:
            return self.card(Markup("{} {}").format(state_tag("corrupt"), record.error))
        if not record.binding:
            return self.card(
                definitions([("state", state_tag("unbound")), ("group", record.group)])
                + note("Not bound to a run yet: python project.py run binds and runs it.")
            )
        binding = record.binding
        urls = record.urls
        links = Markup(", ").join(link(url, name) for name, url in urls.items())
        if not urls:
            mirrored = any(
                getattr(ADAPTERS.get(name), "feed", "live") != "journal" for name in record.backends
            )
            links = Markup("not synced yet" if mirrored else "none: the journal is the run")
        parts = [
            definitions(
                [
                    ("state", state_tag(record.shown)),
                    ("backend", record.backend_label),
                    ("run", Markup("<code>{}</code>").format(record.run_id)),
                    ("tracker", links),
                    ("project / group", f"{binding.get('project')} / {record.group}"),
                    ("attempts", binding.get("attempts")),
                    ("exit code", binding.get("exit_code")),
                    ("error", binding.get("error")),
                    ("bound", _when(binding.get("bound_at"))),
                    ("finished", _when(binding.get("finished_at"))),
                    ("synced", _synced(record)),
                ]
            )
        ]
        parts.append(self._attempts(record))
        summary = record.summary
        if summary:
            parts.append(Markup("<p><strong>Last metrics</strong></p>"))
            parts.append(definitions(sorted(summary.items())))
        if record.previous_runs:
            parts.append(Markup("<p><strong>Earlier runs of this job</strong> (aexp rerun)</p>"))
            rows = [
                (
                    Markup("<code>{}</code>").format(p.get("run_id")),
                    state_tag(str(p.get("state"))),
                    p.get("exit_code"),
                    _when(p.get("finished_at")),
                    link(p.get("url"), p.get("url") or "-"),
                    ", ".join(kept_files(record.path, str(p.get("run_id")))) or "-",
                )
                for p in record.previous_runs
            ]
            header = ("run", "state", "exit code", "finished", "url", "its files, kept with it")
            parts.append(table(header, rows, table_id=f"aexp-previous-{record.job_id}"))
        return self.card(page_assets() + Markup("").join(parts))

    def _attempts(self, record: Any) -> Markup:
        try:
            journal = read_journal(record.journal)
        except (FileNotFoundError, TypeError):
            return note("No journal yet.")
        attempts = journal.attempts
        if not attempts:
            return note("Not executed yet.")
        rows = []
        for index, a in enumerate(attempts):
            steps = "-" if a.first_step is None else f"{a.first_step}-{a.last_step}"
            outcome = _outcome(a, index == len(attempts) - 1)
            rows.append(
                (
                    a.number,
                    a.host,
                    _when(a.started_at),
                    _when(a.ended_at),
                    a.exit_code,
                    outcome,
                    steps,
                    a.rows,
                )
            )
        header = ("attempt", "host", "started", "ended", "exit code", "outcome", "steps", "rows")
        return Markup("<p><strong>Attempts</strong> (from the journal)</p>") + table(
            header, rows, table_id=f"aexp-attempts-{record.job_id}"
        )


class CurvesCard(AexpCard):
    """The run's metric curves over its step axis: inline SVG on the job's own page; an image
    loaded when scrolled into view (/aexp/jobs/<id>/curves.svg) where a page shows many jobs
    (drawing a figure costs ~0.1-0.2 s)."""

    def __init__(self, name: str = "Curves", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)

    def register(self, dashboard: Any) -> None:
        add_job_curves_route(dashboard, list(self.options.metrics), self.options.group_by)

    def get_cards(self, job: Any) -> list[dict[str, Any]]:
        if request.endpoint != "show_job":
            src = url_for("aexp_job_curves", jobid=job.id)
            return self.card(
                Markup('<img class="aexp-curves-image" loading="lazy" src="{}" alt="{}">').format(
                    src, f"metric curves of job {job.id}"
                )
            )
        record = read_record(job, job.cached_statepoint, self.options.group_by)
        svg, drawn = job_figure(record, list(self.options.metrics))
        if svg is None:
            return self.card(note("No metric logged yet."))
        caption = note(
            f"{', '.join(drawn)} over the step axis, every attempt joined; "
            "x: where a preempted attempt ended."
        )
        return self.card(
            Markup('<div class="aexp-curves" id="aexp-curves-{}">').format(job.id)
            + Markup(svg)
            + Markup("</div>")
            + caption
        )


__all__ = ["CurvesCard", "RunCard"]
