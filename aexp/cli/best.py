"""`aexp best METRIC[:REDUCTION]`: which configuration wins over its seeds, by how much, and the
runs behind it (aexp.results.ranking), read from the jobs themselves.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project_dir
from aexp.cli.runs import (
    add_selection_options,
    group_keys,
    selection_of,
    text_cell,
    write_text_table,
)


def describe(spread: Any) -> str:
    """`0.201 ± 0.0123 (mean ± std of 3 finished runs), 95% CI [0.171, 0.232]`."""
    if spread.n == 1:
        return f"{text_cell(spread.mean)} (one finished run: no spread)"
    return (
        f"{text_cell(spread.mean)} ± {text_cell(spread.std)} (mean ± std of {spread.n} finished "
        f"runs), 95% CI [{text_cell(spread.ci_low)}, {text_cell(spread.ci_high)}]"
    )


def _states(group: Any) -> str:
    parts = [f"{count} {state}" for state, count in sorted(group.states.items())]
    return f"{group.runs} run{'s' if group.runs != 1 else ''}: {', '.join(parts)}"


def cmd_best(args: argparse.Namespace) -> int:
    from aexp.results import JournalStats, iter_records, parse_metric
    from aexp.results.groups import group_records
    from aexp.results.ranking import DIRECTIONS, best_of, direction_of, run_rows
    from aexp.results.workspace import find_root
    from aexp.settings import load_settings

    spec = parse_metric(args.metric)
    direction = direction_of(spec, args.direction)  # before reading anything
    selection = selection_of(args)
    root = find_root(_project_dir(args))
    settings = load_settings(root)
    groups = group_records(
        iter_records(root, selection, group_by=settings.group_by),
        keys=group_keys(args.group_by),
        seed_keys=settings.seed_keys,
        metrics=[spec],
        stats=JournalStats(root),
        keep_runs=True,
    )
    where = selection.describe() or "all jobs"
    best = best_of(groups, spec.name, direction)
    if args.json:
        from aexp.results.documents import best_document, write_json

        write_json(best_document(best, selection=where), sys.stdout)
        return 0
    keys = groups.keys
    winner, spread = best.winner
    out = [
        f"best {spec.name} ({DIRECTIONS[direction]}) of {len(best.ranked)} configuration(s) by "
        f"{', '.join(keys) or 'nothing'}: {winner.label(keys)}",
        f"  {describe(spread)}; {_states(winner)}",
    ]
    if best.runner_up is None:
        out.append("runner-up: none (one configuration has a finished run with a value)")
    else:
        second, other = best.runner_up
        out += [f"runner-up: {second.label(keys)}", f"  {describe(other)}; {_states(second)}"]
        gap = best.gap
        order = "runner-up minus best" if direction == "min" else "best minus runner-up"
        line = f"gap: {text_cell(gap.diff)} ({order})"
        if best.tie:
            line += ": a tie, the two means are equal"
        if gap.ci_low is not None:
            verdict = "resolved at 95%" if gap.resolved else "not resolved at 95% (it includes 0)"
            line += (
                f", 95% CI [{text_cell(gap.ci_low)}, {text_cell(gap.ci_high)}] (Welch): {verdict}"
            )
        else:
            line += "; no interval (a configuration has a single finished run)"
        out.append(line)
    print("\n".join(out))
    rows = run_rows(winner, spec.name, groups.seed_keys)
    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    print("runs behind the best:")
    write_text_table(
        ["JOB", *params, "STATE", spec.name],
        lambda: (
            [r["job_id"], *(r["params"].get(k) for k in params), r["state"], r["value"]]
            for r in rows
        ),
    )
    if best.unranked:
        names = "; ".join(g.label(keys) for g in best.unranked[:5])
        more = f" and {len(best.unranked) - 5} more" if len(best.unranked) > 5 else ""
        print(
            f"not ranked ({len(best.unranked)}: no finished run with a value of {spec.name}): "
            f"{names}{more}"
        )
    return 0


def register(commands: Commands) -> None:
    """Add `aexp best`: its options, help text and examples."""
    sub = commands.add(
        "best",
        "the configuration that wins on a metric over its seeds, the runner-up and the gap",
        "  aexp best loss:min                      (lowest loss of each run, mean over seeds)\n"
        "  aexp best accuracy --max --group-by lr  (last accuracy, highest wins)\n\n"
        "Configurations: every state-point key but the [results] seed_keys of signac.rc\n"
        "  (--group-by K1,K2: these keys). Their statistics are over FINISHED runs: mean,\n"
        "  std (n - 1), 95% CI (Student's t); the gap's CI is Welch's. Which way is better:\n"
        "  --min / --max, or the reduction (loss:min: lower, accuracy:max: higher).",
        cmd_best,
    )
    sub.add_argument("metric", metavar="METRIC", help="KEY (last value) or KEY:REDUCTION")
    way = sub.add_mutually_exclusive_group()
    way.add_argument(
        "--min", dest="direction", action="store_const", const="min", help="lower is better"
    )
    way.add_argument(
        "--max", dest="direction", action="store_const", const="max", help="higher is better"
    )
    sub.add_argument(
        "--group-by",
        metavar="K1,K2",
        help="the state-point keys of a configuration (default: every key but the seed keys)",
    )
    add_selection_options(sub)
    sub.add_argument("--json", action="store_true", help="one JSON document (aexp.best/1)")


__all__ = ["cmd_best", "describe", "register"]
