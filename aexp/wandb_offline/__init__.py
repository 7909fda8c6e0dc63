"""W&B offline runs on local disk: finding, reading and mending them, without network.

    folders.py   where each attempt's folder ("fragment") is: the file system only
    framing.py   the transaction log's framing (`run-<id>.wandb`): read and write it
    decode.py    what a fragment holds (run, rows and steps, summary, exit), runs merged
    mend.py      what makes a damaged or moved fragment syncable again, losing nothing readable

Finding fragments needs only the file system (folders.py, imported with the package); decoding
and mending need the wandb package (its protobuf classes): their modules are imported on first
use.
"""

from typing import TYPE_CHECKING

from aexp.lazy import lazy_names
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

if TYPE_CHECKING:
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
    from aexp.wandb_offline.framing import (
        BLOCK_SIZE,
        OfflineRunError,
        read_log,
        read_payloads,
        write_log,
    )

# Reading and writing logs is imported on first use: finding fragments (an idle sync, `status`)
# needs the file system only.
_DECODE = "aexp.wandb_offline.decode"
_FRAMING = "aexp.wandb_offline.framing"
_WHERE = {
    **dict.fromkeys(
        (
            "Fragment",
            "OfflineRun",
            "list_offline_runs",
            "merge_fragments",
            "read_fragment",
            "read_offline_run",
            "record_class",
            "scan_offline_runs",
        ),
        _DECODE,
    ),
    **dict.fromkeys(
        ("BLOCK_SIZE", "OfflineRunError", "read_log", "read_payloads", "write_log"), _FRAMING
    ),
}
__getattr__, __dir__ = lazy_names(
    globals(), _WHERE, ("decode", "framing", "folders", "mend", "repair")
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
