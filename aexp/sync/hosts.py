"""Whether this host may upload offline runs, and the W&B server's web address.

A host can sync when it is outside a SLURM allocation (compute nodes have no network;
`SLURM_JOB_ID` is set there) and has W&B credentials. `can_sync_here` (called by `status`) only
reads the environment and the netrc file: it never imports wandb and never contacts a server.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.wandb.ai"
INSTALL_HINT = "pip install 'agentic-experiments[wandb]'"


def _base_url() -> str:
    return (os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")


def _netrc_path() -> Path:
    # Where wandb 0.31 looks: $NETRC, else ~/.netrc (or ~/_netrc where only that exists).
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    unix, windows = Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()
    return windows if windows.exists() and not unix.exists() else unix


def can_sync_here() -> bool:
    """True when this host may upload offline runs: W&B credentials are present and it is not
    inside a SLURM allocation (compute nodes have no network; `SLURM_JOB_ID` is set there).

    Credentials, as wandb 0.31 finds them: a non-empty `WANDB_API_KEY`, or a netrc entry
    (`$NETRC`, else `~/.netrc`) with a password for the `host[:port]` of `WANDB_BASE_URL`
    (default api.wandb.ai) -- what `wandb login` writes. Reads the environment and that one
    file only: never imports wandb, never contacts a server (`status` calls it).
    """
    if os.environ.get("SLURM_JOB_ID"):
        return False
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    base = _base_url()
    netloc = urlsplit(base if "://" in base else f"https://{base}").netloc
    if not netloc:
        return False
    try:
        entry = netrc.netrc(str(_netrc_path())).authenticators(netloc)
    except (netrc.NetrcParseError, OSError):  # wandb ignores an unreadable file too
        return False
    return bool(entry and entry[2])


def app_url() -> str:
    """The W&B web app's URL for the API at WANDB_BASE_URL (WANDB_APP_URL wins if set)."""
    if os.environ.get("WANDB_APP_URL"):
        return os.environ["WANDB_APP_URL"].strip().rstrip("/")
    base = _base_url()
    split = urlsplit(base)
    if split.hostname and split.hostname.startswith("api."):  # api.wandb.ai -> wandb.ai
        netloc = split.netloc.replace(split.hostname, split.hostname[len("api.") :], 1)
        return f"{split.scheme}://{netloc}"
    return base  # a self-hosted server serves its app and its API from one address
