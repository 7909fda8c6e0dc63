"""Whether this host may sync runs to each backend, and the W&B server's web address, as wandb
itself resolves them.

`backend_blocker(name)` answers per backend: W&B needs credentials (below), a replayed backend
what its adapter's `sync_blocker()` says (MLflow: its package), and no backend syncs from inside a
SLURM allocation. The sync asks once per pass and backend: a backend that cannot be synced here
is said once and not attempted run by run.

A host can sync when it is outside a SLURM allocation (compute nodes have no network;
`SLURM_JOB_ID` is set there) and wandb finds credentials for its server. The server is wandb's
setting `base_url`: `WANDB_BASE_URL`, else wandb's settings files (`$WANDB_CONFIG_DIR/settings` or
`~/.config/wandb/settings`, then `./wandb/settings`; `wandb login --host` writes there), else
wandb's default (`wandb.sdk.lib.urls.DEFAULT_BASE_URL`, https://api.forge.coreweave.com in wandb
0.31). wandb 0.31 looks for credentials in this order (`wbauth.authenticate_session`, which
`wandb sync` calls):

1. `WANDB_API_KEY`, else `WANDB_IDENTITY_TOKEN_FILE`;
2. the netrc file (`$NETRC`, else `~/.netrc`, else `~/_netrc`): the entry for the base URL's
   `host[:port]`, and for a CoreWeave Forge host, failing that, the entry of the W&B host behind
   it (`api.wandb.ai`, where `wandb login` wrote it before 0.31): `wbauth.read_netrc_auth`;
3. the `api_key` setting of wandb's settings files.

`sync_blocker` answers from the environment alone where it can (a SLURM allocation; a non-empty
`WANDB_API_KEY`; no source of credentials at all, none of the variables and files above): no
import at all, so `status` on a host without credentials does not pay ~0.5 s for wandb's import.
Otherwise it imports wandb and asks wandb's own functions,
once per process (`status` asks for every job that waits for a sync). It never creates wandb's
process-wide setup (`wandb.setup()`), whose settings a later `wandb.init` in the same process
would reuse, and never contacts a server. If wandb's functions moved or fail, the answer is
"cannot sync" with the reason, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

INSTALL_HINT = "pip install 'agentic-experiments[wandb]'"
# The W&B cloud's API address before wandb 0.31: the base URL assumed only when wandb itself
# cannot be asked (not installed, or its internals moved) to derive a run's web address.
LEGACY_BASE_URL = "https://api.wandb.ai"


def sync_blocker() -> str | None:
    """None when this host may upload offline runs; otherwise one sentence saying why not.

    Inside a SLURM allocation (`SLURM_JOB_ID` set) never, whatever the credentials: answered
    without importing anything. A non-empty `WANDB_API_KEY` is enough (wandb's first source):
    answered without importing wandb. Otherwise wandb is imported and asked for credentials for
    its base URL (see the module docstring), and that answer is kept for the life of the process
    (`forget_sync_blocker` drops it). Never raises, never contacts a server.
    """
    slurm = _allocation()
    if slurm:
        return slurm
    if os.environ.get("WANDB_API_KEY", "").strip():
        return None
    return _ask_host()


def can_sync_here(backends: Iterable[str] = ("wandb",)) -> bool:
    """True when this host may sync runs to some backend of `backends` (default: W&B, whose
    check is `sync_blocker() is None`): outside a SLURM allocation, and the backend's own check
    (`backend_blocker`) passes."""
    return any(backend_blocker(name) is None for name in backends)


@dataclass(frozen=True)
class Blocker:
    """Why a backend cannot be synced from this host: one sentence, and a few words for the
    summary of a sync (`wandb: 4 failed (no credentials: wandb login)`)."""

    reason: str
    short: str


def backend_blocker(name: str) -> Blocker | None:
    """Why runs cannot be synced to backend `name` from this host, or None when they can.

    Inside a SLURM allocation never (answered without importing anything). W&B: credentials as
    wandb finds them (`sync_blocker`). Any other backend: its adapter's `sync_blocker()` (MLflow:
    its package installed). Never contacts a server; the answer for W&B is kept per process."""
    slurm = _allocation()
    if slurm:
        return Blocker(slurm, "inside a SLURM allocation")
    if name == "wandb":
        reason = sync_blocker()
        if reason is None:
            return None
        if "not installed" in reason:
            short = "wandb not installed"
        elif "credential" in reason or "API key" in reason or "netrc" in reason:
            short = "no credentials: wandb login"
        else:
            short = "W&B cannot be used here"
        return Blocker(reason, short)
    return _adapter_blocker(name)


@functools.cache
def _adapter_blocker(name: str) -> Blocker | None:
    """A backend's own answer (its adapter's `sync_blocker()`), kept per process: `status`
    asks for every job that waits for a sync."""
    from aexp.trackers import ADAPTERS

    check = getattr(ADAPTERS.get(name), "sync_blocker", None)
    reason = check() if callable(check) else None
    if reason is None:
        return None
    short = f"{name} not installed" if "not installed" in reason else f"{name} cannot be used here"
    return Blocker(reason, short)


def _allocation() -> str | None:
    slurm_job = os.environ.get("SLURM_JOB_ID")
    if slurm_job:
        return (
            f"this process runs inside a SLURM allocation (SLURM_JOB_ID={slurm_job}), "
            "and compute nodes do not upload"
        )
    return None


def forget_sync_blocker() -> None:
    """Drop the answers `sync_blocker` and `backend_blocker` keep for this process (after
    `wandb login`, or installing a backend's package, in it)."""
    _ask_host.cache_clear()
    _adapter_blocker.cache_clear()


NO_CREDENTIALS = (
    "no W&B credentials on this host (no WANDB_API_KEY, no netrc file, no wandb settings "
    "file): run `wandb login` or set WANDB_API_KEY"
)


@functools.cache
def _ask_host() -> str | None:
    """The answer when the environment variables alone cannot give it: none of wandb's sources
    of credentials exists (`_no_credential_source`), else wandb's own (`_ask_wandb`)."""
    return NO_CREDENTIALS if _no_credential_source() else _ask_wandb()


def _no_credential_source() -> bool:
    """True when none of the places `_credentials_blocker` asks wandb about can hold a key: the
    variables WANDB_API_KEY and WANDB_IDENTITY_TOKEN_FILE are unset, and neither a netrc file
    (`$NETRC`, ~/.netrc, ~/_netrc: wandb 0.31 wbnetrc._get_netrc_file_path) nor wandb's global
    settings files (`$WANDB_CONFIG_DIR/settings` or ~/.config/wandb/settings, and the working
    directory's ./wandb/settings or ./.wandb/settings) exists. Whatever
    server wandb would use, there is then no key for it. Only stats files; imports nothing."""
    if any(name in os.environ for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC")):
        return False
    config_dir = os.environ.get("WANDB_CONFIG_DIR")
    system = Path(config_dir) if config_dir else Path("~", ".config", "wandb")
    # wandb also reads the workspace settings file of the working directory (its `root_dir`):
    # ./wandb/settings, or ./.wandb/settings where ./.wandb exists (Settings.settings_workspace).
    files = (
        Path("~", ".netrc"),
        Path("~", "_netrc"),
        system / "settings",
        Path("wandb", "settings"),
        Path(".wandb", "settings"),
    )
    return not any(path.expanduser().exists() for path in files)


def _ask_wandb() -> str | None:
    try:
        import wandb
    except ImportError:
        return f"the wandb package is not installed; {INSTALL_HINT}"
    # wandb prints its findings (a netrc entry without a key, a broken settings file) to
    # stderr: kept for the reason instead of interleaving with `status` output.
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            blocker = _credentials_blocker()
    except Exception as exc:  # wandb refused its own configuration, or its internals moved
        refused = _refused_setting(exc)
        blocker = (
            f"wandb refuses its setting {refused}"
            if refused
            else f"wandb {getattr(wandb, '__version__', '?')} could not tell whether this host "
            f"has W&B credentials ({type(exc).__name__}: {_one_line(exc)})"
        )
    printed = _one_line(re.sub(r"(?m)^wandb: ", "", said.getvalue()))
    return f"{blocker} (wandb: {printed})" if blocker and printed else blocker


def _credentials_blocker() -> str | None:
    """wandb's own answer, step by step in its order (wbauth.authenticate._use_system_auth)."""
    from wandb import env as wandb_env
    from wandb.errors import AuthenticationError
    from wandb.sdk.lib import wbauth

    key = os.environ.get(wandb_env.API_KEY)
    if key:  # set but blank: sync_blocker took every other value
        problem = wbauth.check_api_key(key) or "it is blank"
        return f"{wandb_env.API_KEY} is set but is not a usable API key: {problem}"
    if os.environ.get(wandb_env.IDENTITY_TOKEN_FILE):
        return None  # wandb's second source from the environment: an OIDC token file
    settings = wandb_settings()
    host = wbauth.HostUrl(settings.base_url)
    try:
        netrc_key = wbauth.read_netrc_auth(host=host)
    except AuthenticationError as exc:
        return (
            f"the netrc entry for {host.url} is not a usable API key ({_one_line(exc)}); "
            "run `wandb login` or set WANDB_API_KEY"
        )
    if netrc_key or settings.api_key:
        return None
    return f"no W&B credentials for {host.url}: run `wandb login` or set WANDB_API_KEY"


def wandb_settings() -> Any:
    """A private `wandb.Settings` loaded as wandb loads its own at start-up: defaults, then the
    settings files, then `WANDB_*` variables (wandb_setup._WandbSetup._load_settings).

    Private: wandb's process-wide settings are created once and then kept, so building them here
    would freeze them before a `wandb.init` later in this process. Imports wandb; raises what
    wandb raises for a setting it refuses (a pydantic ValidationError for a bad WANDB_BASE_URL).
    """
    from wandb import env as wandb_env
    from wandb.sdk.wandb_settings import Settings

    settings = Settings(quiet=True)  # no "Loading settings from ..." line on stderr
    # Where wandb's start-up looks for the global settings file (wandb 0.31, wandb_setup.py).
    config_dir = os.environ.get(wandb_env.CONFIG_DIR)
    system = Path(config_dir) if config_dir else Path("~", ".config", "wandb")
    settings.settings_system = str(system.expanduser() / "settings")
    settings.update_from_system_settings()
    settings.update_from_env_vars(dict(os.environ))
    return settings


def app_url() -> str:
    """The W&B web app's address for the server uploads go to, without a trailing slash.

    wandb's own answer (its setting `app_url`: `WANDB_APP_URL` if set, else derived from the base
    URL, e.g. https://api.forge.coreweave.com -> https://forge.coreweave.com/wandb) when wandb can
    be imported and asked. Otherwise `WANDB_APP_URL`, else derived without wandb from
    `WANDB_BASE_URL` or LEGACY_BASE_URL: `api.<host>` becomes `<host>`, and any other server is
    taken to serve its app from its API's address (as W&B's self-hosted server does).
    """
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # a settings file wandb complains about
            return str(wandb_settings().app_url).rstrip("/")
    except Exception:  # not installed, moved, or refusing its configuration: derive it here
        return _app_url_without_wandb()


def _app_url_without_wandb() -> str:
    if os.environ.get("WANDB_APP_URL"):
        return os.environ["WANDB_APP_URL"].strip().rstrip("/")
    base = (os.environ.get("WANDB_BASE_URL") or LEGACY_BASE_URL).strip().rstrip("/")
    split = urlsplit(base)
    if split.hostname and split.hostname.startswith("api."):  # api.wandb.ai -> wandb.ai
        netloc = split.netloc.replace(split.hostname, split.hostname[len("api.") :], 1)
        return f"{split.scheme}://{netloc}"
    return base


def _refused_setting(exc: Exception) -> str | None:
    """ "<name> (<value>): <why>" for the first error of a pydantic ValidationError (how wandb's
    Settings refuse a value, e.g. WANDB_BASE_URL=https://wandb.ai), None for anything else."""
    errors = getattr(exc, "errors", None)
    try:
        first = errors()[0] if callable(errors) else None
        if not isinstance(first, dict):
            return None
        name = ".".join(str(part) for part in first.get("loc", ())) or "?"
        return f"{name} ({first.get('input')!r}): {_one_line(first.get('msg', exc))}"
    except Exception:  # not pydantic's shape after all
        return None


def _one_line(text: object) -> str:
    """`text` as one line of at most 300 characters (pydantic and wandb write several)."""
    return " ".join(str(text).split())[:300]
