"""Results of a sweep, read from the jobs themselves: offline, on a cluster, for every backend.

    workspace.py  the project's job directories and state points, read without signac
    select.py   which jobs: `Selection` (state-point filters, experiment, hypothesis, state)
    records.py  one `JobRecord` per job: state point + binding (one document read, like status);
                `state_of`, the one place a job's state is read from
    reduce.py   metric specs (`loss`, `loss:min`) and the reductions of a run's history
    stats.py    reductions of the journals, only the keys asked; long journals cached
    table.py    the runs table: columns, rows, sorting (`build_table`), kept compact
    spread.py   n, mean, std and Student's t interval over seeds; Welch's gap of two
    groups.py   configurations over seeds (`group_records`): counts by state, spreads
    ranking.py  which configuration wins (`best_of`): winner, runner-up, gap, its runs
    compare.py  two jobs or configurations side by side (`compare`)
    documents.py  the JSON documents of the reporting commands (versioned schema names)
    curves.py   a metric over a run's step axis (or wall time, or another metric), attempts
                joined, with its breaks (`curve_of`)
    plot.py     the figures of `aexp plot` and the dashboard (matplotlib, imported there only)

The journal (`<job>/tracker_log/<run_id>/events.jsonl`, aexp.journal) is the source of every
metric; the binding's `summary` holds the last values. Nothing here imports matplotlib, wandb,
mlflow or signac-flow; signac is imported when a project's jobs are listed.
"""

from aexp.results.curves import Break, Curve, curve_of, metric_keys
from aexp.results.records import JobRecord, iter_records, read_record
from aexp.results.reduce import MetricSpec, parse_metric, parse_metrics
from aexp.results.select import Selection, SelectionError, varying_keys
from aexp.results.stats import JournalStats
from aexp.results.table import Table, build_table

__all__ = [
    "Break",
    "Curve",
    "JobRecord",
    "JournalStats",
    "MetricSpec",
    "Selection",
    "SelectionError",
    "Table",
    "build_table",
    "curve_of",
    "iter_records",
    "metric_keys",
    "parse_metric",
    "parse_metrics",
    "read_record",
    "varying_keys",
]
