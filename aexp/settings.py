"""The template's own settings: `signac.rc` at the project root, overridable by environment.

signac 2 never reads `signac.rc` (it reads `.signac/config`), so the file is ours alone. It is INI,
read with the standard library's configparser. It must never carry a top-level `project` key:
without `.signac/config`, signac's legacy detection would take the file for an old project.

Environment variables win over the file, so a batch script or CI can switch a setting without
editing it:

    AEXP_BACKEND   [tracker] backend       AEXP_SYNC_WORKERS  [sync] workers
    AEXP_PROJECT   [tracker] project       AEXP_SYNC_TIMEOUT  [sync] timeout
    AEXP_ENTITY    [tracker] entity        AEXP_STALE_AFTER   [workflow] stale_after
    AEXP_OFFLINE   [tracker] offline       AEXP_HEARTBEAT     [workflow] heartbeat_interval
    AEXP_TAGS      [tracker] tags     AEXP_OTEL_ENDPOINT [otel] endpoint
    AEXP_GROUP_BY  [tracker] group_by       AEXP_STALL_AFTER   [workflow] stall_after
    AEXP_ON_STALL  [workflow] on_stall      AEXP_MAX_SUBMIT    [slurm] max_submit
    AEXP_SESSION_ENV [agent] session_env
"""

from __future__ import annotations

import configparser
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aexp.agent.limits import AGENT_KEYS, AgentSettings, read_agent_section
from aexp.envstamp import env_stamp
from aexp.errors import SettingsError
from aexp.trackers.names import name_problem
from aexp.validate import validate_project_name

SETTINGS_FILE = "signac.rc"


_ENV = {
    ("tracker", "backend"): "AEXP_BACKEND",
    ("tracker", "project"): "AEXP_PROJECT",
    ("tracker", "entity"): "AEXP_ENTITY",
    ("tracker", "offline"): "AEXP_OFFLINE",
    ("tracker", "tags"): "AEXP_TAGS",
    ("tracker", "group_by"): "AEXP_GROUP_BY",
    ("workflow", "heartbeat_interval"): "AEXP_HEARTBEAT",
    ("workflow", "stale_after"): "AEXP_STALE_AFTER",
    ("workflow", "stall_after"): "AEXP_STALL_AFTER",
    ("workflow", "on_stall"): "AEXP_ON_STALL",
    ("slurm", "max_submit"): "AEXP_MAX_SUBMIT",
    ("sync", "workers"): "AEXP_SYNC_WORKERS",
    ("sync", "timeout"): "AEXP_SYNC_TIMEOUT",
    ("otel", "endpoint"): "AEXP_OTEL_ENDPOINT",
    ("agent", "session_env"): "AEXP_SESSION_ENV",
}
# Every key of [tracker]: a misspelt one would otherwise silently fall back to its default.
TRACKER_KEYS = ("backend", "project", "entity", "offline", "tags", "group_by")
# Every key of [otel] (docs/otel.md).
OTEL_KEYS = ("endpoint", "protocol", "timeout", "service_name")
OTEL_PROTOCOLS = ("http/protobuf", "http/json")
# A `group_by` key: a state-point key as `--sp` writes it, dots for nested keys.
_GROUP_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


# Signals the run lifecycle turns into a recorded preemption; SLURM's warning signal must be one.
PREEMPT_SIGNAL_NAMES = ("TERM", "USR1", "USR2")
# What a stalled attempt gets ([workflow] on_stall): a label, or preempted (and requeued).
ON_STALL = ("report", "preempt")
# What `submit` does with what exceeds the queue limits ([slurm] over_limit).
OVER_LIMIT = ("wait", "bundle")


@dataclass(frozen=True)
class SlurmSettings:
    """The [slurm] section, as templates/script.sh uses it (see docs/hpc.md)."""

    partition: str = ""
    account: str = ""
    warning_signal: str = "USR1"  # sent warning_seconds before the time limit
    warning_seconds: int = 120
    requeue: bool = True
    max_submit: int | None = None  # SLURM jobs of yours in the queue at once (None: no limit)
    over_limit: str = "wait"  # what exceeds the limits: "wait" (next submit) or "bundle"
    walltime: str = ""  # "auto": sized from past attempts (aexp resources); "": directives
    memory: str = ""  # "auto": sized from past attempts; "": directives


@dataclass(frozen=True)
class OtelSettings:
    """The [otel] section: where the otel backend sends each run's trace (docs/otel.md)."""

    endpoint: str = ""  # "" (MLflow's server, else OTEL_EXPORTER_OTLP_*), "none", "mlflow", a URL
    protocol: str = "http/protobuf"  # or "http/json"
    timeout: float = 10.0  # seconds one request may take
    service_name: str = "aexp"  # the resource's service.name


@dataclass(frozen=True)
class DashboardSettings:
    """The [dashboard] section: what `python dashboard.py run` shows first (docs/results.md)."""

    metrics: tuple[str, ...] = ()  # metric keys offered first (empty: as the runs logged them)
    colour_by: str = ""  # state-point key colouring the sweep (empty: the first that varies)
    band: str = ""  # minmax, std, ci or empty (no band)
    max_rows: int = 200  # jobs in the runs table
    max_curves: int = 400  # runs drawn in the sweep's figure


BANDS = ("minmax", "std", "ci")
# Every key of [results] and [dashboard]: a misspelt one (color_by) would silently do nothing.
SECTION_KEYS = {
    "results": ("seed_keys",),
    "dashboard": ("metrics", "colour_by", "band", "max_rows", "max_curves"),
}


@dataclass(frozen=True)
class Settings:
    """Validated settings with defaults for everything but the tracker project."""

    path: Path | None
    backend: str = "noop"  # the primary backend: the first of `backends`
    backends: tuple[str, ...] = ("noop",)
    project: str = "aexp"
    entity: str | None = None
    offline: bool = True
    tags: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()  # state-point keys naming the group (empty: "condition")
    heartbeat_interval: float = 30.0
    stale_after: float = 300.0
    stall_after: float = 600.0  # the least silence of a journal that counts as a stall
    on_stall: str = "report"  # or "preempt": a stalled attempt is preempted and requeued
    artifacts: tuple[str, ...] = ()
    sync_workers: int = 4
    sync_timeout: float = 600.0
    mlflow_tracking_uri: str | None = None  # [mlflow] tracking_uri as written (None: default)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    otel: OtelSettings = field(default_factory=OtelSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    seed_keys: tuple[str, ...] = ("seed",)  # [results]: keys that tell seeds, not configurations
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)


def load_settings(root: str | os.PathLike | None = None) -> Settings:
    """Read `<root>/signac.rc` (missing file: defaults) and apply environment overrides.

    Raises SettingsError naming the file and key for anything unreadable or malformed.
    """
    path = Path(root or ".") / SETTINGS_FILE
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    if path.exists():
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            _check_top_level(text, path)
            parser.read_string(text, source=str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"cannot read {path}: {exc}.") from None
        except configparser.Error as exc:
            first = str(exc).splitlines()[0].rstrip(".")
            raise SettingsError(f"{path} is not a valid INI file: {first}.") from None
    else:
        path = None  # type: ignore[assignment]
    shown = str(path) if path else SETTINGS_FILE

    def raw(section: str, key: str) -> str | None:
        env = _ENV.get((section, key))
        if env and os.environ.get(env) is not None:
            return os.environ[env]
        return parser.get(section, key, fallback=None)

    def origin(section: str, key: str) -> str:
        env = _ENV.get((section, key))
        if env and os.environ.get(env) is not None:
            return f"environment variable {env}"
        return f"[{section}] {key} in {shown}"

    def boolean(section: str, key: str, default: bool) -> bool:
        value = raw(section, key)
        if value is None or value.strip() == "":
            return default
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{origin(section, key)} must be true or false, not {value!r}.")

    def number(section: str, key: str, default: float, *, integer: bool = False) -> float:
        value = raw(section, key)
        if value is None or value.strip() == "":
            return default
        kind = "a whole number" if integer else "a number"
        try:
            parsed = int(value) if integer else float(value)
        except ValueError:
            raise SettingsError(f"{origin(section, key)} must be {kind}, not {value!r}.") from None
        if not math.isfinite(parsed):
            raise SettingsError(f"{origin(section, key)} must be {kind}, not {value!r}.")
        if parsed <= 0:
            raise SettingsError(f"{origin(section, key)} must be positive, not {value!r}.")
        return parsed

    def words(section: str, key: str) -> tuple[str, ...]:
        value = raw(section, key) or ""
        return tuple(w for w in re.split(r"[,\s]+", value) if w)

    if parser.has_option(configparser.DEFAULTSECT, "project"):
        raise SettingsError(
            f"{shown} has a top-level 'project' key; move it under [tracker] "
            "(signac mistakes a top-level one for a legacy project)."
        )
    for section, keys in (("tracker", TRACKER_KEYS), ("otel", OTEL_KEYS), ("agent", AGENT_KEYS)):
        if not parser.has_section(section):
            continue
        for key in parser.options(section):
            if key not in keys and not parser.has_option(configparser.DEFAULTSECT, key):
                raise SettingsError(
                    f"[{section}] {key} in {shown} is not a setting; the [{section}] keys are "
                    f"{', '.join(keys)}."
                )
    backends = words("tracker", "backend") or ("noop",)
    for backend in backends:
        problem = name_problem(backend)
        if problem:
            raise SettingsError(f"{origin('tracker', 'backend')} {problem}.")
    if len(set(backends)) != len(backends):
        raise SettingsError(f"{origin('tracker', 'backend')} names a backend twice.")
    project = (raw("tracker", "project") or "aexp").strip()
    validate_project_name(project, where=origin("tracker", "project"))
    entity = (raw("tracker", "entity") or "").strip() or None
    group_by = words("tracker", "group_by")
    for key in group_by:
        if not _GROUP_KEY.match(key):
            raise SettingsError(
                f"{origin('tracker', 'group_by')} names {key!r}, not a state-point key "
                "(letters, digits, '_' and '-', '.' for nested keys)."
            )
    if len(set(group_by)) != len(group_by):
        raise SettingsError(f"{origin('tracker', 'group_by')} names a key twice.")
    signal_name = (raw("slurm", "warning_signal") or "USR1").strip().upper().removeprefix("SIG")
    if signal_name not in PREEMPT_SIGNAL_NAMES:
        raise SettingsError(
            f"{origin('slurm', 'warning_signal')} must be one of "
            f"{', '.join(PREEMPT_SIGNAL_NAMES)}, not {signal_name!r} (any other signal kills the "
            "run instead of checkpointing it)."
        )
    warning_seconds = int(number("slurm", "warning_seconds", 120, integer=True))
    if warning_seconds > 65535:  # sbatch's limit for --signal
        raise SettingsError(
            f"{origin('slurm', 'warning_seconds')} must be at most 65535, not {warning_seconds}."
        )
    for section, keys in SECTION_KEYS.items():
        for key in parser.options(section) if parser.has_section(section) else ():
            if key not in keys and not parser.has_option(configparser.DEFAULTSECT, key):
                raise SettingsError(
                    f"[{section}] {key} in {shown} is not a setting; the [{section}] keys are "
                    f"{', '.join(keys)}."
                )
    seed_keys = words("results", "seed_keys") or ("seed",)
    colour_by = (raw("dashboard", "colour_by") or "").strip()
    named = [("results", "seed_keys", key) for key in seed_keys]
    named += [("dashboard", "colour_by", colour_by)] if colour_by else []
    for section, option, key in named:
        if not _GROUP_KEY.match(key):
            raise SettingsError(
                f"{origin(section, option)} names {key!r}, not a state-point key (letters, "
                "digits, '_' and '-', '.' for nested keys)."
            )
    band = (raw("dashboard", "band") or "").strip()
    if band and band not in BANDS:
        raise SettingsError(
            f"{origin('dashboard', 'band')} must be one of {', '.join(BANDS)} or empty, not "
            f"{band!r}."
        )
    dashboard = DashboardSettings(
        metrics=words("dashboard", "metrics"),
        colour_by=colour_by,
        band=band,
        max_rows=int(number("dashboard", "max_rows", 200, integer=True)),
        max_curves=int(number("dashboard", "max_curves", 400, integer=True)),
    )
    choices = {
        ("workflow", "on_stall"): ON_STALL,
        ("slurm", "over_limit"): OVER_LIMIT,
        ("slurm", "walltime"): ("auto",),
        ("slurm", "memory"): ("auto",),
    }
    chosen: dict[tuple[str, str], str] = {}
    for (section, key), allowed in choices.items():
        value = (raw(section, key) or "").strip().lower()
        if value and value not in allowed:
            empty = " or empty" if len(allowed) == 1 else ""
            raise SettingsError(
                f"{origin(section, key)} must be {' or '.join(allowed)}{empty}, not {value!r}."
            )
        chosen[section, key] = value
    max_submit = raw("slurm", "max_submit")
    slurm = SlurmSettings(
        partition=(raw("slurm", "partition") or "").strip(),
        account=(raw("slurm", "account") or "").strip(),
        warning_signal=signal_name,
        warning_seconds=warning_seconds,
        requeue=boolean("slurm", "requeue", True),
        max_submit=int(number("slurm", "max_submit", 1, integer=True))
        if max_submit and max_submit.strip()
        else None,
        over_limit=chosen["slurm", "over_limit"] or OVER_LIMIT[0],
        walltime=chosen["slurm", "walltime"],
        memory=chosen["slurm", "memory"],
    )
    protocol = (raw("otel", "protocol") or OTEL_PROTOCOLS[0]).strip().lower()
    if protocol not in OTEL_PROTOCOLS:
        raise SettingsError(
            f"{origin('otel', 'protocol')} must be one of {', '.join(OTEL_PROTOCOLS)}, "
            f"not {protocol!r}."
        )
    endpoint = (raw("otel", "endpoint") or "").strip()
    named = endpoint.lower() in ("", "none", "mlflow")
    if not named and not re.match(r"^https?://[^/\s]+", endpoint):
        raise SettingsError(
            f"{origin('otel', 'endpoint')} must be none, mlflow or an http(s) URL, "
            f"not {endpoint!r}."
        )
    otel = OtelSettings(
        endpoint=endpoint,
        protocol=protocol,
        timeout=number("otel", "timeout", 10.0),
        service_name=(raw("otel", "service_name") or "aexp").strip() or "aexp",
    )

    agent = read_agent_section(raw, origin, number)
    return Settings(
        path=path,
        backend=backends[0],
        backends=backends,
        project=project,
        entity=entity,
        offline=boolean("tracker", "offline", True),
        tags=words("tracker", "tags"),
        group_by=group_by,
        heartbeat_interval=number("workflow", "heartbeat_interval", 30.0),
        stale_after=number("workflow", "stale_after", 300.0),
        stall_after=number("workflow", "stall_after", 600.0),
        on_stall=chosen["workflow", "on_stall"] or ON_STALL[0],
        artifacts=words("workflow", "artifacts"),
        sync_workers=int(number("sync", "workers", 4, integer=True)),
        sync_timeout=number("sync", "timeout", 600.0),
        mlflow_tracking_uri=(raw("mlflow", "tracking_uri") or "").strip() or None,
        slurm=slurm,
        otel=otel,
        agent=agent,
        seed_keys=seed_keys,
        dashboard=dashboard,
    )


# The settings of each project root, with what they were read from: signac.rc's (mtime, size)
# and the environment overrides.
_cached: dict[str, tuple[Any, Settings]] = {}
_ENV_NAMES = tuple(_ENV.values())


def cached_settings(root: str | os.PathLike) -> Settings:
    """`load_settings(root)`, read again only when `<root>/signac.rc` or an environment override
    (an AEXP_* variable of the module docstring) changed: for code that asks for one setting
    per job or per call (a run's group, an actor's session variable). Raises SettingsError."""
    key = os.path.abspath(root)
    try:
        st = os.stat(os.path.join(key, SETTINGS_FILE))
        stamp: Any = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    stamp = (stamp, env_stamp(_ENV_NAMES))
    cached = _cached.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    settings = load_settings(key)
    _cached[key] = (stamp, settings)
    return settings


def _check_top_level(text: str, path: Path) -> None:
    """Reject keys above the first [section]: configparser's own error would not name them."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("["):
            return
        key = re.split(r"\s*[=:]", stripped, maxsplit=1)[0].strip()
        why = (
            " (and signac mistakes a top-level 'project' key for a legacy project)"
            if key.lower() == "project"
            else ""
        )
        raise SettingsError(
            f"{path} line {number}: top-level key {key!r} is outside any section; move it under "
            f"its section, e.g. [tracker]{why}."
        )
