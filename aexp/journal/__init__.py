"""The run journal: the job's own record of its run, one JSON event per line.

Every execution attempt appends to `<job workspace>/tracker_log/<run_id>/events.jsonl`, whatever
the tracker backends are; the noop backend is this journal and nothing else. Trackers are mirrors
of it: W&B is fed live during the attempt and repaired from the journal when it lost rows, MLflow
is fed from it at sync time, and results (tables, plots, the dashboard) read it directly.

Each line is a strict JSON object with an ISO-8601 UTC `timestamp` (microseconds) and an `event`:

    init_run      run_id, project, group, tags, config, notes, offline, backends
    resume_run    attempt (1, 2, ...), host, pid, slurm_job_id, slurm_restart_count: an
                  execution attempt opened the run (its start, which the job document records
                  only when the attempt ends or has run for a second)
    log           metrics, step; "redo": true when the step is behind the run's step axis
                  (work re-done after a checkpoint); "nonfinite": [keys] whose values are the
                  strings "NaN", "Infinity" or "-Infinity" standing for those floats
    log_artifact  name, path (relative to the job's directory when inside it), size_bytes
    finish        exit_code, preempted, attempt (the attempt it ends)

Every event is written with one `write` and flushed to the kernel before the call returns, so a
SIGKILL (the OOM killer, a node failure, SLURM's KILL after the grace period) loses at most the
event being written; a reader skips such a torn last line. docs/job-document.md ("The journal")
is the schema users read.

    format.py   where a journal lives, timestamps, strict-JSON metric values
    writer.py   JournalWriter: appending events
    reader.py   read_journal (everything: attempts, rows, artifacts, summary)
    tail.py     read_tail (the last event, highest step, last attempt's opening and pace)
"""

from aexp.journal.format import (
    JOURNAL_DIR,
    JOURNAL_FILE,
    decode_metrics,
    encode_metrics,
    journal_file,
    journal_path,
    now,
)
from aexp.journal.reader import (
    Artifact,
    Attempt,
    Journal,
    Row,
    iter_events,
    read_head,
    read_journal,
)
from aexp.journal.tail import Tail, read_tail, tail_step
from aexp.journal.writer import JournalWriter

__all__ = [
    "JOURNAL_DIR",
    "JOURNAL_FILE",
    "Artifact",
    "Attempt",
    "Journal",
    "JournalWriter",
    "Row",
    "Tail",
    "decode_metrics",
    "encode_metrics",
    "iter_events",
    "journal_file",
    "journal_path",
    "now",
    "read_head",
    "read_journal",
    "read_tail",
    "tail_step",
]
