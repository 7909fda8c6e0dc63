"""Sync runs from a login node, from the job document's point of view: W&B offline runs mended,
completed from the journal and uploaded; backends fed by replay brought up to the journal.
Idempotent, parallel, bounded and honest.

    from aexp.sync import find_offline_runs, sync_offline_runs

    paths = find_offline_runs(".")           # every offline-run folder of the project
    results = sync_offline_runs(".")         # upload what is not synced yet
    for r in results:
        if not r.ok:
            print(r.path, r.stderr)          # the last line of stderr is the reason

The job document is the truth (docs/sync.md tells the whole story). For every run that needs
it, the sync reads the run's journal, mends its W&B fragments and writes what they lack into
repair fragments, uploads the fragments the document does not record as synced with W&B's own
`wandb sync`, and replays the run into the backends fed by replay (MLflow). Every upload is
recorded in flight before it starts; its verdict comes from evidence (W&B's marker and its own
log when the upload ended cleanly, else the server's own account of the run), never from a log
line alone, so every run reaches every backend exactly once. A job's claim is held while its run
is worked on. Where each part lives:

    rules.py           which backends a run needs, when it is due, whether an attempt holds it
    plan.py            find_offline_runs; what each job needs, read from its document
    driver.py          sync_offline_runs: batches of claimed jobs, settle, prepare, replay, upload
    tally.py           the results of a sync, what it has in flight, backends this host cannot do
    claims.py          the job claims (held by `wandb sync` too); batch size under `ulimit -n`
    record.py          what is written into the job document, and when (in flight, synced)
    replay.py          backends fed by replay: the journal handed to `adapter.replay`
    deadline.py        a replay bounded by the timeout, whatever the backend
    quiet.py           the backends' SDKs kept off stderr unless -v
    result.py          SyncResult, one per W&B fragment, replayed run or unreadable job
    report.py          the summary per backend, in runs, and its JSON
    interrupts.py      SIGTERM and SIGHUP handled like Ctrl-C while uploading
    operation.py       the flow operation `sync_offline`: one sync per pass (sync_ready,
                       sync_operation), and sync_jobs
    hosts.py           backend_blocker / can_sync_here / sync_blocker; the W&B app's address
    processes.py       child processes: environment, killing a whole tree, masking the key
    wandb_prepare.py   W&B: a run from the journal's point of view (mend, repair, sort fragments)
    wandb_round.py     W&B: one batch's uploads, from the in-flight record to the verdict
    wandb_upload.py    W&B: fragments in start-time order, rounds, batches over processes
    wandb_process.py   W&B: one `wandb sync` process: judgement, timeouts, process tree
    wandb_sync_log.py  W&B: the reader of `wandb sync`'s own log, which judges runs one by one
    wandb_account.py   W&B: the server's own account of runs, through wandb's public API
    wandb_settle.py    W&B: uploads in doubt settled from that account

Uploads run in `python -m wandb sync` child processes. wandb is imported in this process only to
decode fragments that are not recorded yet, to write a repair fragment (when the journal holds
rows the fragments lack), or by hosts.py when the environment alone cannot answer whether this
host has credentials. signac is never imported. No API key is ever written anywhere; if one
appears in W&B's output it is masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aexp.lazy import lazy_names

if TYPE_CHECKING:
    from aexp.sync.driver import sync_offline_runs
    from aexp.sync.hosts import can_sync_here, forget_sync_blocker, sync_blocker
    from aexp.sync.operation import sync_jobs, sync_operation, sync_ready
    from aexp.sync.plan import find_offline_runs
    from aexp.sync.processes import RETRY_DEFAULTS
    from aexp.sync.result import SyncResult

# Names are imported on first use (PEP 562): an idle `aexp sync-offline` pass loads the plan and
# nothing of the upload machinery.
_WHERE = {
    "RETRY_DEFAULTS": "aexp.sync.processes",
    "SyncResult": "aexp.sync.result",
    "can_sync_here": "aexp.sync.hosts",
    "find_offline_runs": "aexp.sync.plan",
    "forget_sync_blocker": "aexp.sync.hosts",
    "sync_blocker": "aexp.sync.hosts",
    "sync_jobs": "aexp.sync.operation",
    "sync_offline_runs": "aexp.sync.driver",
    "sync_operation": "aexp.sync.operation",
    "sync_ready": "aexp.sync.operation",
}


__getattr__, __dir__ = lazy_names(globals(), _WHERE)

__all__ = [
    "RETRY_DEFAULTS",
    "SyncResult",
    "can_sync_here",
    "find_offline_runs",
    "forget_sync_blocker",
    "sync_blocker",
    "sync_jobs",
    "sync_offline_runs",
    "sync_operation",
    "sync_ready",
]
