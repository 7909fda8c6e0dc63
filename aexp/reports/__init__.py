"""The reports of the JSON contract (aexp.contract): one library function per report returns its
document; the CLI prints it (as text, or as JSON with `--json`) and the MCP server returns it.

    status.py     aexp.status/1           every job's state, stale, sync, last step, error
    changes.py    aexp.status.changes/1   what changed since a cursor, without reading every job
    show.py       aexp.show/1             everything about one job
    diagnose.py   aexp.diagnose/1         why a job is not running, or failed
    curve.py      aexp.curve/1            a metric's history, downsampled to a bound
    runs.py       aexp.runs/1             the runs table

Reports only read: what changes a project is in aexp.writes.
"""
