"""`aexp export-otel`: each run of the given jobs as an OTLP JSON Lines trace file, offline."""

from __future__ import annotations

import argparse
import sys

from aexp.cli.parsing import Commands
from aexp.cli.resolve import _jobs, _project


def cmd_export_otel(args: argparse.Namespace) -> int:
    from aexp.settings import load_settings
    from aexp.trackers.otel.export import export_run, job_runs, run_lock

    project = _project(args)
    settings = load_settings(project.path)
    failed = 0
    for job in _jobs(project, args.job_ids):
        for run_id in job_runs(job.path):
            try:
                with run_lock(job.path, run_id, settings.otel.timeout * 6):
                    done = export_run(job.path, run_id, service_name=settings.otel.service_name)
                problems = []
                if args.check:
                    from aexp.trackers.otel.files import check_traces_file

                    problems = check_traces_file(done.path)
            except Exception as exc:  # one run's failure never stops another's export
                failed += 1
                reason = " ".join(str(exc).split())[:300] or type(exc).__name__
                print(f"error: job {job.id} run {run_id}: {reason}", file=sys.stderr)
                continue
            print(
                f"{job.id} run {run_id}: {done.spans} span(s), {done.appended} new -> {done.path}"
            )
            for problem in problems:
                failed += 1
                print(f"error: {done.path}: {problem}", file=sys.stderr)
    return 1 if failed else 0


def register(commands: Commands) -> None:
    """Add `aexp export-otel`: its options, help text and examples."""
    sub = commands.add(
        "export-otel",
        "write every run of the jobs as an OpenTelemetry trace file (no network)",
        "  aexp export-otel 5d1f4c3e\n"
        "  aexp runs -q | aexp export-otel - --check     (every job, format checked)",
        cmd_export_otel,
    )
    sub.add_argument(
        "job_ids", nargs="+", metavar="JOB", help="job id, unique prefix or run id; - reads stdin"
    )
    sub.add_argument(
        "--check",
        action="store_true",
        help="check each file against the OTLP file format (needs the otel extra)",
    )
