"""`aexp bind-tracker`: bind jobs to a tracker run (idempotent) and print each binding as JSON.

The run gets the backends of signac.rc's `[tracker] backend` (all of them: `wandb, mlflow` binds
both), as the workflow's `init_tracker` does, unless `--backend` names one."""

from __future__ import annotations

import argparse
import json
from typing import Any

from aexp.cli.parsing import Commands
from aexp.cli.resolve import _adapter, _jobs, _project, _tracker_target
from aexp.errors import BindingError
from aexp.trackers import ADAPTERS


def cmd_bind_tracker(args: argparse.Namespace) -> int:
    from aexp.agent.actor import current_actor
    from aexp.binding import bind_tracker as bind_job
    from aexp.binding import get_binding
    from aexp.settings import load_settings

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
    adapters = None
    if any(b is None for b in bindings.values()):
        # --backend binds that backend alone; else every backend signac.rc names, in its order
        # (the first is the primary), as the workflow's init_tracker binds.
        names = [backend] if args.backend else list(settings.backends)
        adapters = [_adapter(n, entity, project.workspace, settings) for n in names]
    actor = current_actor("aexp bind-tracker", root=project.path)
    for job in jobs:
        binding = bindings[job.id]
        if binding is None:
            binding = bind_job(
                job,
                adapters,
                project=name,
                offline=offline,
                tags=tags,
                notes=args.notes,
                actor=actor,
            )
        print(json.dumps({"job_id": job.id, **binding}), flush=True)
    return 0


def register(commands: Commands) -> None:
    """Add `aexp bind-tracker`: its options, help text and examples."""
    sub = commands.add(
        "bind-tracker",
        "bind jobs to a tracker run (idempotent) and print each binding as JSON",
        "  aexp bind-tracker 5d1f4c3e --backend wandb --project ecg-inquiry-eval --offline\n"
        "  aexp new-run --experiment E018 --hypothesis H012 --sp seed=0..4 | "
        "aexp bind-tracker -\n\n"
        "Options left out come from signac.rc's [tracker] section: without --backend the run\n"
        "gets every backend it names. A job already bound keeps its run; naming a different\n"
        "backend, project, entity or mode for it is an error.",
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
