"""W&B offline runs on local disk: finding, reading and mending them, without network.

    folders.py   where each attempt's folder ("fragment") is: the file system only
    framing.py   the transaction log's framing (`run-<id>.wandb`): read and write it
    decode.py    what a fragment holds (run, rows and steps, summary, exit), runs merged
    mend.py      what makes a damaged or moved fragment syncable again, losing nothing readable

Finding fragments needs only the file system; decoding and mending need the wandb package (its
protobuf classes), imported on first use.
"""

from aexp.wandb_offline.decode import (
    Fragment,
    OfflineRun,
    list_offline_runs,
    merge_fragments,
    read_fragment,
    read_offline_run,
    record_class,
    scan_offline_runs,
)
from aexp.wandb_offline.folders import (
    FRAGMENT_GLOB,
    FRAGMENT_PREFIX,
    SYNCED_SUFFIX,
    WANDB_DIR,
    FragmentFolder,
    find_fragments,
    fragment_log,
    iter_fragment_folders,
    job_fragment_folders,
    workspace_fragment_folders,
)
from aexp.wandb_offline.framing import (
    BLOCK_SIZE,
    OfflineRunError,
    read_log,
    read_payloads,
    write_log,
)

__all__ = [
    "BLOCK_SIZE",
    "FRAGMENT_GLOB",
    "FRAGMENT_PREFIX",
    "SYNCED_SUFFIX",
    "WANDB_DIR",
    "Fragment",
    "FragmentFolder",
    "OfflineRun",
    "OfflineRunError",
    "find_fragments",
    "fragment_log",
    "iter_fragment_folders",
    "job_fragment_folders",
    "list_offline_runs",
    "merge_fragments",
    "read_fragment",
    "read_log",
    "read_offline_run",
    "read_payloads",
    "record_class",
    "scan_offline_runs",
    "workspace_fragment_folders",
    "write_log",
]
