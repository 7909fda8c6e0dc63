"""Upload W&B offline runs from a login node: idempotent, parallel, bounded and honest.

    from aexp.sync import find_offline_runs, sync_offline_runs

    paths = find_offline_runs(".")           # every offline-run folder of the project
    results = sync_offline_runs(".")         # upload what is not synced yet
    for r in results:
        if not r.ok:
            print(r.path, r.stderr)          # the last line of stderr is the reason

Compute nodes write every execution attempt of a run as one offline folder ("fragment")
`<project>/workspace/<job_id>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<run_id>[-N]/`, all fragments of
a run sharing its id. This package uploads them with W&B's own `wandb sync` and judges the outcome
itself, because `wandb sync`'s exit code says nothing. Where each part lives (docs/sync.md tells
the whole story):

    result.py          SyncResult, one per fragment, and its skip reasons
    plan.py            find_offline_runs; what each job has to upload, read from its document
    driver.py          sync_offline_runs: plan, upload, take outcomes, record, progress bar
    record.py          `synced_at` and `url` in the job document once a finished run is uploaded
    interrupts.py      SIGTERM and SIGHUP handled like Ctrl-C while uploading
    operation.py       sync_jobs, the flow operation `sync_offline`
    hosts.py           can_sync_here / sync_blocker (credentials, SLURM); the W&B app's address
    wandb_upload.py    W&B: fragments in start-time order, rounds, batches over processes
    wandb_process.py   W&B: one `wandb sync` process: judgement, timeouts, process tree, env
    wandb_sync_log.py  W&B: the reader of `wandb sync`'s own log, which judges runs one by one

Uploads run in `python -m wandb sync` child processes; wandb is imported in this process only by
hosts.py, when the environment alone cannot answer whether this host has credentials or what a
run's address is. signac is never imported. No API key is ever written anywhere; if one appears in
W&B's output it is masked.
"""

from __future__ import annotations

from aexp.sync.driver import sync_offline_runs
from aexp.sync.hosts import can_sync_here, forget_sync_blocker, sync_blocker
from aexp.sync.operation import sync_jobs
from aexp.sync.plan import find_offline_runs
from aexp.sync.result import SyncResult
from aexp.sync.wandb_process import RETRY_DEFAULTS

__all__ = [
    "RETRY_DEFAULTS",
    "SyncResult",
    "can_sync_here",
    "find_offline_runs",
    "forget_sync_blocker",
    "sync_blocker",
    "sync_jobs",
    "sync_offline_runs",
]
