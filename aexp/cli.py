"""The `aexp` command line: create runs, bind them to trackers, sync, and find a run from a job
and back. docs/cli.md is the manual; every example in it is run by tests/test_cli.py.

    aexp new-run --experiment E018 --hypothesis H012 --sp 'condition=full|ablated,seed=0..4'
    aexp bind-tracker <job_id> --backend wandb --project ecg-inquiry-eval --offline
    aexp runs                      aexp show <job id, prefix or run id>
    aexp list-runs --backend wandb --group-prefix H012/
    aexp sync-offline              aexp rearm <job_id>

Exit codes: 0 success; 1 something failed while doing the work (a sync failed, a file could not
be written); 2 bad input (one sentence on stderr, nothing changed on disk); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aexp import __version__
from aexp.binding import (
    STATES,
    _check_id,
    check_rearmable,
    find_job,
    find_project_root,
    get_binding,
    open_project,
    rearm,
    run_spec,
)
from aexp.binding import bind_tracker as bind_job
from aexp.binding import create_run as create_job
from aexp.errors import AexpError, BindingError, JobNotFoundError, TrackerInitError
from aexp.jobdoc import read_doc
from aexp.settings import Settings, load_settings, validate_project_name
from aexp.trackers import ADAPTERS, TrackerAdapter, get_adapter

PROG = "aexp"
MAX_SWEEP = 10_000  # jobs one `new-run` may create; a typo in a range should not make millions


class UsageError(AexpError):
    """The command line itself is wrong (grammar of --sp, a flag's value, ...)."""


class _ArgumentError(Exception):
    """argparse found a problem; turned into one `aexp: error:` line by `main`."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # never prints usage: one sentence, see main()
        raise _ArgumentError(message, self.prog)


# == the --sp grammar ==========================================================================
_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_RANGE = re.compile(r"^([+-]?\d+)\.\.([+-]?\d+)$")
_QUOTES = "\"'"
_RESERVED = ("experiment_id", "hypothesis_id")


def _split(spec: str, text: str, sep: str) -> list[str]:
    """Split `text` at `sep` where it is not inside a quoted string."""
    parts, current, quote = [], [], None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in _QUOTES:
            quote = char
            current.append(char)
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote:
        raise UsageError(f"--sp {spec!r}: a {quote} quote is not closed.")
    parts.append("".join(current))
    return parts


def _values(spec: str, key: str, text: str) -> list[Any]:
    """The value(s) of one alternative: a typed scalar, a quoted string, or a range."""
    value = text.strip()
    if not value:
        raise UsageError(
            f'--sp {spec!r}: {key} has an empty value; write {key}="" for an empty string.'
        )
    if value[0] in _QUOTES:
        if len(value) < 2 or value[-1] != value[0] or value[0] in value[1:-1]:
            raise UsageError(f"--sp {spec!r}: the quotes of {key}'s value {value} do not match.")
        return [value[1:-1]]
    if any(q in value for q in _QUOTES):
        raise UsageError(
            f"--sp {spec!r}: {key}'s value {value} has a quote inside it; quote the whole value."
        )
    if ".." in value:
        match = _RANGE.match(value)
        if not match:
            raise UsageError(
                f"--sp {spec!r}: {key}={value} is not a range START..END of whole numbers "
                f'(quote it, {key}="{value}", if you meant a string).'
            )
        start, end = int(match.group(1)), int(match.group(2))
        if start > end:
            raise UsageError(
                f"--sp {spec!r}: the range {value} is empty (START must not exceed END)."
            )
        if end - start >= MAX_SWEEP:
            raise UsageError(
                f"--sp {spec!r}: the range {value} has more than {MAX_SWEEP} values; "
                "split the sweep into several commands."
            )
        return list(range(start, end + 1))
    if value in ("true", "false"):
        return [value == "true"]
    if value == "null":
        return [None]
    if _INT.match(value):
        return [int(value)]
    if _FLOAT.match(value):
        return [float(value)]
    return [value]


def parse_sp(specs: Sequence[str]) -> list[dict[str, Any]]:
    """The state points (cross product) described by the `--sp` arguments; see docs/cli.md.

    Each argument is `key=value[,key=value...]`; a value is a number, true/false, null, a
    quoted string or a bare string; `A|B|C` lists alternatives and `START..END` an inclusive
    range of whole numbers; `a.b=1` sets the nested key {"a": {"b": 1}}. Raises UsageError.
    """
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        if not spec.strip():
            raise UsageError("--sp '' is empty; write key=value[,key=value...].")
        for pair in _split(spec, spec, ","):
            pair = pair.strip()
            if not pair:
                raise UsageError(f"--sp {spec!r} has an empty key=value pair (check the commas).")
            if "=" not in pair:
                raise UsageError(f"--sp {spec!r}: {pair!r} has no '='; write key=value.")
            key, _, value = pair.partition("=")
            key = key.strip()
            if not key:
                raise UsageError(f"--sp {spec!r}: {pair!r} has an empty key.")
            if not all(_KEY.match(part) for part in key.split(".")):
                raise UsageError(
                    f"--sp {spec!r}: key {key!r} may only hold letters, digits, '_' and '-' "
                    "('.' nests keys)."
                )
            if key in _RESERVED:
                flag = "--" + key.split("_")[0]
                raise UsageError(f"--sp {spec!r}: set {key} with {flag}, not --sp.")
            if key in axes:
                raise UsageError(f"--sp {spec!r}: {key} is given twice.")
            alternatives = _split(spec, value, "|")
            values: dict[str, Any] = {}  # by JSON text: 1, 1.0, true and "1" stay distinct
            for alternative in alternatives:
                for item in _values(spec, key, alternative):
                    values.setdefault(json.dumps(item), item)
            axes[key] = list(values.values())
    for key in axes:
        for other in axes:
            if other.startswith(key + "."):
                raise UsageError(f"--sp: {key} is given both a value and a nested key {other}.")
    count = 1
    for values in axes.values():
        count *= len(values)
    if count > MAX_SWEEP:
        raise UsageError(
            f"--sp describes more than {MAX_SWEEP} jobs; split the sweep into several commands."
        )
    points = []
    for combo in itertools.product(*axes.values()):
        point: dict[str, Any] = {}
        for key, value in zip(axes, combo, strict=True):
            *parents, leaf = key.split(".")
            node = point
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        points.append(point)
    return points


# == helpers ===================================================================================
def _signac_error(name: str) -> tuple[type[Exception], ...]:
    """`signac.errors.<name>` for an except clause, or () (matches nothing) if signac was never
    imported, in which case none of its errors can have been raised. An except clause evaluates
    this only when an exception reaches it, so commands that do not need signac (`sync-offline`)
    never pay for importing it (~40 ms)."""
    errors = sys.modules.get("signac.errors")
    return () if errors is None else (getattr(errors, name),)


def _project_dir(args: argparse.Namespace) -> str | None:
    where = args.project_dir
    if where is not None and not os.path.isdir(where):
        raise UsageError(f"-C {where}: no such directory.")
    return where


def _project(args: argparse.Namespace) -> Any:
    """The signac project containing -C DIR (default: the current directory)."""
    where = _project_dir(args)
    # signac logs what it then raises; main's error says it once, in aexp's words.
    import logging

    logging.getLogger("signac").addHandler(logging.NullHandler())
    try:
        return open_project(where)
    except _signac_error("Error") as exc:
        first = str(exc).strip().splitlines()[0].rstrip(".:")
        raise AexpError(f"cannot open the signac project: {first}.") from None


def _jobs(project: Any, idents: Iterable[str], *, stdin: bool = True) -> list[Any]:
    """Resolve job ids, unique prefixes or tracker run ids (`-`: read them from stdin)."""
    names: list[str] = []
    for ident in idents:
        if ident == "-" and stdin:
            names.extend(sys.stdin.read().split())
        else:
            names.append(ident)
    if not names:
        raise UsageError("no job ids given (none were read from stdin).")
    if not os.path.isdir(project.workspace):
        raise JobNotFoundError(f"no job or tracker run with id {names[0]!r} in {project.path}.")
    jobs: dict[str, Any] = {}
    for name in names:
        job = find_job(project, name)
        jobs.setdefault(job.id, job)
    return list(jobs.values())


def _check_backend(name: str) -> str:
    if name not in ADAPTERS:
        known = ", ".join(sorted(ADAPTERS))
        raise TrackerInitError(f"unknown tracker backend {name!r}; known backends: {known}.")
    return name


def _adapter(backend: str, entity: str | None, workspace: str) -> TrackerAdapter:
    if backend == "wandb":
        return get_adapter("wandb", entity=entity)
    if backend == "noop":
        return get_adapter("noop", workspace=workspace)
    return get_adapter(backend)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


def _flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(header), *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _section(title: str, mapping: dict[str, Any]) -> list[str]:
    flat = _flatten(mapping)
    lines = [title]
    width = max((len(k) for k in flat), default=0)
    lines += [f"  {key.ljust(width)}  {_fmt(value)}" for key, value in flat.items()]
    return lines


def _plain(value: Any) -> Any:
    """Plain JSON types (signac hands out read-only mapping views)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _dump(obj: Any) -> str:
    return json.dumps(_plain(obj), indent=2, default=str)


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


# == commands ==================================================================================
def cmd_new_run(args: argparse.Namespace) -> int:
    points = parse_sp(args.sp)
    _check_id("experiment_id", args.experiment)  # before the first job, --dry-run included
    _check_id("hypothesis_id", args.hypothesis)
    project = _project(args)
    for point in points:
        if args.dry_run:
            sp = {"hypothesis_id": args.hypothesis, "experiment_id": args.experiment, **point}
            print(f"{project.open_job(sp).id}\t{json.dumps(sp)}")
            continue
        job = create_job(
            experiment_id=args.experiment,
            hypothesis_id=args.hypothesis,
            statepoint=point,
            project=project,
        )
        print(job.id, flush=True)
    return 0


def _tracker_target(args: argparse.Namespace, settings: Settings) -> tuple[str, str, str | None]:
    """Backend, tracker project and entity: the flags where given, else signac.rc's values."""
    backend = _check_backend(args.backend or settings.backend)
    if args.project is not None:
        validate_project_name(args.project, where="--project")
    entity = settings.entity if args.entity is None else (args.entity or None)
    return backend, args.project or settings.project, entity


def cmd_bind_tracker(args: argparse.Namespace) -> int:
    project = _project(args)
    settings = load_settings(project.path)
    backend, name, entity = _tracker_target(args, settings)
    offline = settings.offline if args.offline is None else args.offline
    tags = list(dict.fromkeys([*settings.tags, *args.tag]))
    jobs = _jobs(project, args.job_ids)

    # Check every job before changing any: a bad one leaves all of them as they were.
    bindings: dict[str, dict[str, Any] | None] = {}
    for job in jobs:
        binding = get_binding(job)
        if binding is not None:
            wanted = {
                "--backend": (args.backend, binding["backend"]),
                "--project": (args.project, binding.get("project")),
                "--entity": (args.entity, (binding.get("extra") or {}).get("entity")),
                ("--offline" if args.offline else "--online"): (
                    args.offline,
                    binding.get("offline"),
                ),
            }
            for flag, (asked, actual) in wanted.items():
                if asked is not None and (asked or None) != (actual or None):
                    shown = flag if isinstance(asked, bool) else f"{flag} {asked}"
                    raise BindingError(
                        f"job {job.id} is already bound to {binding['backend']} run "
                        f"{binding['run_id']} in project {binding.get('project')}, not as "
                        f"{shown} asks; remove job.doc['tracker'] to re-bind (a new run is "
                        "created)."
                    )
        bindings[job.id] = binding
    adapter = None
    if any(b is None for b in bindings.values()):
        adapter = _adapter(backend, entity, project.workspace)
    for job in jobs:
        binding = bindings[job.id]
        if binding is None:
            binding = bind_job(
                job, adapter, project=name, offline=offline, tags=tags, notes=args.notes
            )
        print(json.dumps({"job_id": job.id, **binding}), flush=True)
    return 0


def _row(job: Any) -> dict[str, Any]:
    sp = job.cached_statepoint
    row: dict[str, Any] = {
        "job_id": job.id,
        "experiment_id": sp.get("experiment_id"),
        "hypothesis_id": sp.get("hypothesis_id"),
        "group": None,
        "backend": None,
        "offline": None,
        "run_id": None,
        "state": "unbound",
        "url": None,
        "synced": None,
        "synced_at": None,
        "status": None,
    }
    try:
        doc = read_doc(job)
        binding = get_binding(job, doc)
    except BindingError as exc:
        _warn(str(exc))
        row["state"] = "corrupt"
        return row
    row["status"] = doc.get("status")
    if binding is None:
        row["group"] = run_spec(job)["group"]
        return row
    wandb_offline = binding["backend"] == "wandb" and bool(binding.get("offline"))
    row.update(
        group=binding.get("group"),
        backend=binding["backend"],
        offline=bool(binding.get("offline")),
        run_id=binding["run_id"],
        state=binding["state"],
        url=binding.get("url"),
        synced=bool(binding.get("synced_at")) if wandb_offline else None,
        synced_at=binding.get("synced_at"),
    )
    return row


def cmd_runs(args: argparse.Namespace) -> int:
    project = _project(args)
    rows = []
    jobs = sorted(project, key=lambda j: j.id) if os.path.isdir(project.workspace) else []
    for job in jobs:
        try:
            sp = job.cached_statepoint
        except _signac_error("JobsCorruptedError"):
            _warn(f"job {job.id}: its state point file is missing or corrupted; skipped.")
            continue
        if args.experiment and sp.get("experiment_id") != args.experiment:
            continue
        if args.hypothesis and sp.get("hypothesis_id") != args.hypothesis:
            continue
        row = _row(job)
        if args.state and row["state"] not in args.state:
            continue
        rows.append(row)
    rows.sort(key=lambda r: (r["group"] or "", r["job_id"]))
    if args.json:
        print(_dump(rows))
        return 0
    if args.quiet:
        for row in rows:
            print(row["job_id"])
        return 0
    if not rows:
        print("no jobs match.", file=sys.stderr)
        return 0

    def backend(row: dict[str, Any]) -> str | None:
        if row["backend"] and row["offline"] and row["backend"] != "noop":
            return f"{row['backend']}-offline"
        return row["backend"]

    def synced(row: dict[str, Any]) -> str | None:
        return None if row["synced"] is None else ("yes" if row["synced"] else "no")

    header = ("JOB", "GROUP", "BACKEND", "RUN", "STATE", "SYNCED", "URL")
    table = [
        (r["job_id"], r["group"], backend(r), r["run_id"], r["state"], synced(r), r["url"])
        for r in rows
    ]
    print(_table(header, table))
    return 0


def _run_files(job: Any, binding: dict[str, Any] | None) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    if binding is None:
        return files
    if binding["backend"] == "noop":
        events = Path(job.path, "tracker_log", binding["run_id"], "events.jsonl")
        if events.exists():
            files.append({"path": str(events), "kind": "noop event log"})
    elif binding["backend"] == "wandb":
        from aexp.wandb_offline import find_fragments, fragment_log

        for folder in find_fragments(job.path):
            log = fragment_log(folder)
            synced = log is not None and log.with_name(log.name + ".synced").exists()
            kind = "W&B offline run, synced" if synced else "W&B offline run, not synced"
            files.append({"path": str(folder), "kind": kind})
    return files


def cmd_show(args: argparse.Namespace) -> int:
    project = _project(args)
    (job,) = _jobs(project, [args.job], stdin=False)
    doc = read_doc(job)
    binding = get_binding(job, doc)
    files = _run_files(job, binding)
    other = {k: v for k, v in doc.items() if k != "tracker"}
    everything = _plain(
        {
            "job_id": job.id,
            "path": job.path,
            "statepoint": job.cached_statepoint,
            "document": other,
            "tracker": binding,
            "run_files": files,
        }
    )
    if args.field:
        value: Any = everything
        for part in args.field.split("."):
            if not isinstance(value, dict) or part not in value:
                raise UsageError(
                    f"--field {args.field}: job {job.id} has no {part!r} there; "
                    "see 'aexp show --json' for the fields."
                )
            value = value[part]
        print(value if isinstance(value, str) else json.dumps(value))
        return 0
    if args.json:
        print(_dump(everything))
        return 0
    group = binding["group"] if binding else run_spec(job)["group"]
    lines = [f"job {job.id}", f"  path   {job.path}", f"  group  {group}", ""]
    lines += _section("state point", _plain(job.cached_statepoint))
    lines += ["", *_section("job document", other)]
    if binding is None:
        lines += ["", "tracker", f"  not bound (bind it with: aexp bind-tracker {job.id})"]
    else:
        lines += ["", *_section("tracker", binding)]
    if files:
        lines += ["", "run files"] + [f"  {f['path']}  ({f['kind']})" for f in files]
    print("\n".join(lines))
    return 0


def cmd_list_runs(args: argparse.Namespace) -> int:
    project = _project(args)
    settings = load_settings(project.path)
    backend, name, entity = _tracker_target(args, settings)
    online = (not settings.offline) if args.online is None else args.online
    workspace = project.workspace
    extras: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if backend == "wandb" and not online:
        from aexp.wandb_offline import _record_class, scan_offline_runs

        _record_class()  # wandb missing: one clear error before scanning anything
        runs = scan_offline_runs(workspace, name, args.group_prefix, problems=problems)
        records = [run.record for run in runs]
        for run in runs:
            extras[run.run_id] = {
                "synced": run.synced,
                "fragments": [
                    {
                        key: getattr(f, key)
                        for key in (
                            "path",
                            "start_time",
                            "state",
                            "exit_code",
                            "first_step",
                            "last_step",
                            "synced",
                            "torn",
                        )
                    }
                    for f in run.fragments
                ],
            }
    elif not os.path.isdir(workspace) and backend == "noop":
        records = []
    else:
        adapter = _adapter(backend, entity, workspace)
        records = adapter.list_runs(project=name, group_prefix=args.group_prefix)
    records.sort(key=lambda r: (r.group, str(r.config.get("job_id", "")), r.id))
    for problem in problems:
        _warn(f"skipped {problem}")
    if args.json:
        print(_dump([{**dataclasses.asdict(r), **extras.get(r.id, {})} for r in records]))
        return 0
    if not records:
        where = f" with group prefix {args.group_prefix!r}" if args.group_prefix else ""
        print(f"no {backend} runs in project {name!r}{where}.", file=sys.stderr)
        return 0
    header = ["RUN", "STATE", "EXIT", "GROUP", "JOB"]
    if extras:
        header += ["FRAGMENTS", "SYNCED"]
    rows = []
    for r in records:
        row = [r.id, r.state, r.exit_code, r.group, r.config.get("job_id")]
        if extras:
            info = extras.get(r.id, {})
            row += [len(info.get("fragments", [])), "yes" if info.get("synced") else "no"]
        rows.append(row)
    print(_table(header, rows))
    return 0


def cmd_rearm(args: argparse.Namespace) -> int:
    project = _project(args)
    jobs = _jobs(project, args.job_ids)
    for job in jobs:  # check all before changing any
        check_rearmable(job)
    for job in jobs:
        binding = rearm(job)
        print(f"re-armed {job.id} (run {binding['run_id']}): eligible for execute again")
    return 0


def _sync_function() -> Callable[..., list[Any]]:
    from aexp import sync

    function = getattr(sync, "sync_offline_runs", None)
    if function is None:
        raise AexpError("offline sync is not available in this build of aexp.")
    return function


def _reason(result: Any) -> str:
    for text in (getattr(result, "stderr", None), getattr(result, "stdout", None)):
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    code = getattr(result, "returncode", None)
    return f"exit code {code}" if code is not None else "no reason given"


def cmd_sync_offline(args: argparse.Namespace) -> int:
    # Without job ids, sync needs job directories only, not signac (see sync_offline_runs).
    root = find_project_root(_project_dir(args))
    settings = load_settings(root)
    job_ids = None
    if args.job_ids:
        jobs = _jobs(_project(args), args.job_ids)
        for job in jobs:
            binding = get_binding(job)
            if binding is None:
                raise BindingError(f"job {job.id} is not bound to a tracker run; nothing to sync.")
            if binding["backend"] != "wandb" or not binding.get("offline"):
                kind = "online W&B" if binding["backend"] == "wandb" else binding["backend"]
                raise BindingError(
                    f"job {job.id}'s run is a {kind} run; only W&B offline runs are synced."
                )
        job_ids = [job.id for job in jobs]
    sync = _sync_function()
    results = sync(
        root,
        dry_run=args.dry_run,
        job_ids=job_ids,
        workers=args.jobs or settings.sync_workers,
        timeout=args.timeout or settings.sync_timeout,
        resync=args.resync,
        progress=sys.stderr.isatty() and not args.json,
    )
    counts = {"synced": 0, "skipped": 0, "failed": 0}
    lines = []
    for r in results:
        where = f"job {r.job_id} run {r.run_id} ({r.path})"
        if r.skipped:
            counts["skipped"] += 1
            if args.verbose:
                lines.append((sys.stdout, f"skipped: {where}: {r.skipped}"))
        elif r.ok:
            counts["synced"] += 1
            if args.verbose:
                verb = "would sync" if args.dry_run else "synced"
                lines.append((sys.stdout, f"{verb}: {where}"))
        else:
            counts["failed"] += 1
            lines.append((sys.stderr, f"failed: {where}: {_reason(r)}"))
    if args.json:
        print(_dump([dataclasses.asdict(r) for r in results]))
        return 1 if counts["failed"] else 0
    for stream, line in lines:
        print(line, file=stream)
    prefix = "dry run, would have " if args.dry_run else ""
    print(
        f"{prefix}synced {counts['synced']}, skipped {counts['skipped']}, failed {counts['failed']}"
    )
    return 1 if counts["failed"] else 0


# == the parser ================================================================================
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


_STATE_CHOICES = (*STATES, "unbound", "corrupt")


def _state(text: str) -> str:
    if text not in _STATE_CHOICES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r}; known states: {', '.join(_STATE_CHOICES)}"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    """The `aexp` argument parser (every command, with its help and example)."""
    common = _Parser(add_help=False)
    common.add_argument(
        "-C",
        "--project-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="use the signac project containing DIR (default: the current directory)",
    )
    parser = _Parser(
        prog=PROG,
        description="Bind signac jobs to experiment-tracker runs (W&B, noop), sync offline runs, "
        "and find a run from a job and back.",
        epilog="examples:\n"
        "  aexp new-run --experiment E018 --hypothesis H012 --sp condition=full,seed=0\n"
        "  aexp runs --state failed\n\n"
        "'aexp COMMAND --help' explains one command; docs/cli.md is the manual.\n"
        "Exit codes: 0 ok, 1 failed while working (e.g. a sync), 2 bad input, 130 interrupted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "-C",
        "--project-dir",
        metavar="DIR",
        default=None,
        help="use the signac project containing DIR (default: the current directory)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str, summary: str, example: str, func: Callable[..., int]) -> Any:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog="examples:\n" + example,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(func=func, command_prog=sub.prog)
        return sub

    # new-run
    sub = command(
        "new-run",
        "create (or find) the job of each state point and print its id",
        "  aexp new-run --experiment E018 --hypothesis H012 --sp condition=full,seed=0\n"
        "  aexp new-run --experiment E018 --hypothesis H012 --sp 'condition=full|ablated' "
        "--sp seed=0..4\n\n"
        "--sp grammar: key=value pairs separated by ','; values are typed: 3 (int), 0.5 or 1e-3\n"
        "(float), true/false, null, \"quoted\" or 'quoted' (always a string), anything else is\n"
        "a string. A|B|C sweeps over alternatives, START..END over whole numbers (inclusive);\n"
        "a.b=1 sets a nested key. Repeated --sp flags add keys; the sweep is their cross\n"
        "product, one job id printed per line. Quote the argument in the shell when it holds\n"
        "'|' or quotes.",
        cmd_new_run,
    )
    sub.add_argument("--experiment", required=True, metavar="E", help="experiment id (Limina)")
    sub.add_argument("--hypothesis", required=True, metavar="H", help="hypothesis id (Limina)")
    sub.add_argument(
        "--sp",
        action="append",
        default=[],
        metavar="KEY=VALUE[,...]",
        help="state point keys (repeatable; see the grammar below)",
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="print each job id and state point without creating anything",
    )

    # bind-tracker
    sub = command(
        "bind-tracker",
        "bind jobs to a tracker run (idempotent) and print each binding as JSON",
        "  aexp bind-tracker 5d1f4c3e --backend wandb --project ecg-inquiry-eval --offline\n"
        "  aexp new-run --experiment E018 --hypothesis H012 --sp seed=0..4 | "
        "aexp bind-tracker -\n\n"
        "Options left out come from signac.rc's [tracker] section. A job already bound keeps\n"
        "its run; naming a different backend, project, entity or mode for it is an error.",
        cmd_bind_tracker,
    )
    sub.add_argument(
        "job_ids", nargs="+", metavar="JOB", help="job id, unique prefix or run id; - reads stdin"
    )
    sub.add_argument("--backend", metavar="NAME", help=f"one of: {', '.join(sorted(ADAPTERS))}")
    sub.add_argument("--project", metavar="P", help="tracker project")
    sub.add_argument("--entity", metavar="E", help="W&B team or user")
    mode = sub.add_mutually_exclusive_group()
    mode.add_argument(
        "--offline", dest="offline", action="store_const", const=True, default=None,
        help="log locally, sync later",
    )  # fmt: skip
    mode.add_argument(
        "--online", dest="offline", action="store_const", const=False, help="log to the server"
    )
    sub.add_argument(
        "--tag", action="append", default=[], metavar="T", help="extra tag (repeatable)"
    )
    sub.add_argument("--notes", metavar="TEXT", help="notes attached to the run")

    # sync-offline
    sub = command(
        "sync-offline",
        "upload finished W&B offline runs (from a login node)",
        "  aexp sync-offline --dry-run\n"
        "  aexp sync-offline --jobs 8 --timeout 300\n\n"
        "Runs already synced are skipped (unless --resync); one line per failure, then\n"
        "'synced N, skipped N, failed N'. Exit code 1 when any run failed to sync.",
        cmd_sync_offline,
    )
    sub.add_argument("job_ids", nargs="*", metavar="JOB", help="only these jobs (default: all)")
    sub.add_argument("--dry-run", action="store_true", help="show what would be synced")
    sub.add_argument(
        "--jobs", type=_positive_int, metavar="N", help="runs synced in parallel ([sync] workers)"
    )
    sub.add_argument(
        "--timeout", type=_positive_float, metavar="S", help="seconds per run ([sync] timeout)"
    )
    sub.add_argument("--resync", action="store_true", help="upload runs already synced again")
    sub.add_argument("--json", action="store_true", help="print the results as a JSON list")
    sub.add_argument("-v", "--verbose", action="store_true", help="one line per run")

    # runs
    sub = command(
        "runs",
        "list jobs with their backend, run id, state, synced or not, and URL",
        "  aexp runs --experiment E018 --state failed\n"
        "  aexp runs --json\n\n"
        f"States: {', '.join(_STATE_CHOICES)}.",
        cmd_runs,
    )
    sub.add_argument("--experiment", metavar="E", help="only this experiment id")
    sub.add_argument("--hypothesis", metavar="H", help="only this hypothesis id")
    sub.add_argument(
        "--state", type=_state, action="append", metavar="S", help="only this state (repeatable)"
    )
    out = sub.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON list")
    out.add_argument("-q", "--quiet", action="store_true", help="print only the job ids")

    # show
    sub = command(
        "show",
        "show everything about one job: state point, document, binding, run files",
        "  aexp show 5d1f4c3e                       (a job id or a unique prefix of one)\n"
        "  aexp show k3j5x9q2                       (a tracker run id finds its job)\n"
        "  aexp show 5d1f4c3e --field tracker.url   (one value, for scripts)",
        cmd_show,
    )
    sub.add_argument("job", metavar="JOB", help="job id, unique prefix, or tracker run id")
    out = sub.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument(
        "--field",
        metavar="PATH",
        help="print one value of the JSON, e.g. tracker.run_id, tracker.url, statepoint.seed",
    )

    # list-runs
    sub = command(
        "list-runs",
        "list the runs a tracker backend holds for a project",
        "  aexp list-runs --backend wandb --project ecg-inquiry-eval --group-prefix H012/\n\n"
        "W&B offline runs are read from the job folders (workspace/*/wandb/offline-run-*),\n"
        "without network; --online asks the W&B server instead.",
        cmd_list_runs,
    )
    sub.add_argument("--backend", metavar="NAME", help="tracker backend ([tracker] backend)")
    sub.add_argument("--project", metavar="P", help="tracker project ([tracker] project)")
    sub.add_argument("--entity", metavar="E", help="W&B team or user (with --online)")
    sub.add_argument(
        "--group-prefix", default="", metavar="PREFIX", help="e.g. H012/ or H012/E018/"
    )
    where = sub.add_mutually_exclusive_group()
    where.add_argument(
        "--offline", dest="online", action="store_const", const=False, default=None,
        help="read local W&B offline runs (default when signac.rc says offline = true)",
    )  # fmt: skip
    where.add_argument(
        "--online", dest="online", action="store_const", const=True, help="query the W&B server"
    )
    sub.add_argument("--json", action="store_true", help="print a JSON list")

    # rearm
    sub = command(
        "rearm",
        "make failed runs eligible for execute again (same run id)",
        "  aexp rearm 5d1f4c3e\n"
        "  aexp runs --state failed -q | aexp rearm -      (every failed run)",
        cmd_rearm,
    )
    sub.add_argument(
        "job_ids", nargs="+", metavar="JOB", help="job id, unique prefix or run id; - reads stdin"
    )
    return parser


COMMANDS = ("new-run", "bind-tracker", "sync-offline", "runs", "show", "list-runs", "rearm")


def _usage_message(exc: _ArgumentError) -> str:
    message = str(exc)
    match = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
    if match:
        return f"unknown command {match.group(1)!r}; commands: {', '.join(COMMANDS)}."
    message = message.replace("the following arguments are required", "missing required argument")
    return f"{message}; see '{exc.prog} --help'."


def _fail(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aexp` console script; returns the exit code."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            prog = getattr(args, "command_prog", PROG)
            noun = "arguments" if len(extra) > 1 else "argument"
            raise _ArgumentError(f"unrecognized {noun}: {' '.join(extra)}", prog)
        if args.command is None:
            raise _ArgumentError("no command given", PROG)
        return args.func(args)
    except _ArgumentError as exc:
        _fail(_usage_message(exc))
        return 2
    except AexpError as exc:
        _fail(str(exc))
        return 2
    except _signac_error("JobsCorruptedError") as exc:
        jobs = ", ".join(map(str, exc.job_ids))
        _fail(
            f"the state point file of job {jobs} is missing or corrupted; restore "
            "signac_statepoint.json or remove the job's directory."
        )
        return 2
    except _signac_error("Error") as exc:
        _fail(f"signac: {str(exc).strip().splitlines()[0]}")
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `aexp runs | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}:{where}." if where else f"{exc.strerror or exc}.")
        return 1


if __name__ == "__main__":
    sys.exit(main())
