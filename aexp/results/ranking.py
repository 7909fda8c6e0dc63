"""Which configuration wins: the groups ranked by a metric's mean over their finished runs.

    best = best_of(groups, "loss:min", direction=None)
    best.winner, best.runner_up        (Group, Spread) pairs; runner_up None with one ranked
    best.gap                           Gap: runner-up mean - winner mean, Welch's 95 % interval
    best.tie                           the two means are equal

Direction: `min` (lower is better) or `max`. Given explicitly (`aexp best --min/--max`), or
read from the reduction: `loss:min` asks for the lowest loss, `accuracy:max` for the highest
accuracy. Any other spec (`loss`, `loss:last`, `loss:mean`) says nothing about which way is
better, and a wrong guess would name the worst configuration as the best: it is an error to
leave it out there. Configurations without a finished run that has a finite value are not
ranked (`unranked`). Equal means keep the configurations' order (their key values), and the
result says it is a tie.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aexp.results.groups import Group, Groups
from aexp.results.reduce import MetricSpec, parse_metric
from aexp.results.select import SelectionError, VaryingKeys
from aexp.results.spread import Gap, Spread, gap
from aexp.results.table import rank

DIRECTIONS = {"min": "lower is better", "max": "higher is better"}


def direction_of(spec: MetricSpec, explicit: str | None) -> str:
    """`min` or `max` for ranking by `spec` (module docstring). Raises SelectionError when
    neither `explicit` nor the reduction says."""
    if explicit is not None:
        if explicit not in DIRECTIONS:
            raise SelectionError(f"unknown direction {explicit!r}; use min or max.")
        return explicit
    if spec.journal and spec.reduction in DIRECTIONS:
        return spec.reduction
    raise SelectionError(
        f"{spec.name}: say which way is better: --min (lower is better) or --max (higher), or "
        f"name the reduction that says it ({spec.key}:min, {spec.key}:max)."
    )


@dataclass
class Best:
    """The ranking of `groups` by metric column `metric` (see the module docstring)."""

    metric: MetricSpec
    direction: str
    groups: Groups
    ranked: list[tuple[Group, Spread]] = field(default_factory=list)  # the best first
    unranked: list[Group] = field(default_factory=list)

    @property
    def winner(self) -> tuple[Group, Spread] | None:
        return self.ranked[0] if self.ranked else None

    @property
    def runner_up(self) -> tuple[Group, Spread] | None:
        return self.ranked[1] if len(self.ranked) > 1 else None

    @property
    def gap(self) -> Gap | None:
        """How far behind the runner-up is: its mean minus the winner's (for `max`, the
        winner's minus its), with Welch's interval; None without a runner-up."""
        if self.winner is None or self.runner_up is None:
            return None
        first, second = self.winner[1], self.runner_up[1]
        return gap(first, second) if self.direction == "min" else gap(second, first)

    @property
    def tie(self) -> bool:
        """Whether the runner-up's mean equals the winner's."""
        return self.runner_up is not None and self.runner_up[1].mean == self.winner[1].mean


def best_of(groups: Groups, metric: str, direction: str | None) -> Best:
    """Rank `groups` by the mean of metric column `metric` (which `groups` was made with).

    Raises SelectionError for a metric the groups were not made with, an unknown direction,
    or when no finished run of any group has a finite value of it.
    """
    spec = parse_metric(metric)
    if spec.name not in {m.name for m in groups.metrics}:
        raise SelectionError(f"{metric}: the groups hold no such metric column.")
    direction = direction_of(spec, direction)
    best = Best(spec, direction, groups)
    for group in groups.groups:
        s = group.spread(spec.name)
        if s.mean is None:
            best.unranked.append(group)
        else:
            best.ranked.append((group, s))
    sign = 1.0 if direction == "min" else -1.0
    best.ranked.sort(key=lambda pair: sign * pair[1].mean)  # stable: ties keep key order
    if not best.ranked:
        finished = sum(g.count("finished") for g in groups.groups)
        logged = ", ".join(groups.logged) or "none yet"
        raise SelectionError(
            f"no finished run of the {groups.runs} selected job(s) has a value of "
            f"{spec.name!r} ({finished} finished); metrics the runs logged: {logged}."
        )
    return best


def run_rows(group: Group, metric: str, seed_keys: list[str]) -> list[dict[str, Any]]:
    """The runs behind a configuration (its jobs, with what tells them apart: the seed keys and
    any other state-point key whose value differs between them), the finished ones first, then
    in the order of those values, each with its value of `metric`."""
    differ = VaryingKeys()
    for run in group.members:
        differ.add(run.statepoint)
    shown = [k for k in differ.all_keys() if k in seed_keys or k in differ.varying()]
    rows = []
    for run in group.members:
        rest = {k: run.statepoint.get(k) for k in shown if k not in group.config}
        rows.append(
            {"job_id": run.job_id, "state": run.state, "params": rest,
             "value": run.values.get(metric)}
        )  # fmt: skip
    rows.sort(
        key=lambda r: (
            r["state"] != "finished",
            [rank(v) if v is not None else (9, "") for v in r["params"].values()],
            r["job_id"],
        )
    )
    return rows


__all__ = ["DIRECTIONS", "Best", "best_of", "direction_of", "run_rows"]
