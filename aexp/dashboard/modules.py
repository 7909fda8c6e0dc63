"""signac-dashboard 0.7 modules: aexp's cards for a job's page and for the sweep's page.

    job_cards.py    RunCard, CurvesCard
    sweep_cards.py  SweepCard, PlotCard, GroupsCard, RunsCard

None of them computes flow's status: every card reads the job documents (and, on a job's page,
that job's journal) through aexp.results, so the sweep's page costs one document read per job.
"""

from __future__ import annotations

from typing import Any

from aexp.dashboard.data import Options
from aexp.dashboard.job_cards import CurvesCard, RunCard
from aexp.dashboard.sweep_cards import GroupsCard, PlotCard, RunsCard, SweepCard


def default_modules(options: Options) -> list[Any]:
    """The dashboard's modules: aexp's cards plus signac-dashboard's state point list."""
    from signac_dashboard.modules import StatepointList

    return [
        SweepCard(options=options),
        PlotCard(options=options),
        GroupsCard(options=options),
        RunsCard(options=options),
        RunCard(options=options),
        CurvesCard(options=options),
        StatepointList(),
    ]


__all__ = [
    "CurvesCard",
    "GroupsCard",
    "PlotCard",
    "RunCard",
    "RunsCard",
    "SweepCard",
    "default_modules",
]
