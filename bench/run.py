"""Run the benchmarks: ours vs a baseline, in the same run, as median ratios.

    python bench/run.py                 every benchmark at the issue's sizes (about 15 minutes)
    python bench/run.py --quick         small sizes, few repetitions (about 4 minutes)
    python bench/run.py --smoke         the smallest sizes, one repetition: that every benchmark
                                        still runs and its checks hold (CI; exits 1 if not)
    python bench/run.py --full          also status on 100,000 jobs, the trivial sweep at 10,000
    python bench/run.py --only 1,5      some of them
    python bench/run.py --only 1 --status-sizes 10000 --reps 9

Prints a table (ours, baseline, median ratio, target, PASS/MISS) and writes everything measured,
with the machine it ran on, to bench/results/<time>.json (and bench/results/latest.json).
A MISS does not fail the command: these are measurements, not tests. A benchmark that cannot
run (its checks fail: `status` outputs that disagree on eligible jobs, a sweep side that did not
finish every job) is reported as an error; with --smoke (or --strict) the command then exits 1.
Generated projects are cached in bench/.cache/ and reused. Every subprocess gets a hermetic
environment (HOME and TMPDIR in the cache, W&B pointed at a closed loopback port or the loopback
stand-in, its telemetry off): nothing is sent anywhere but 127.0.0.1. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CACHE, REPO, RESULTS, Result, log

BENCHMARKS = {
    1: ("status at scale", "bench.b1_status"),
    2: ("start-up of project.py", "bench.b2_startup"),
    3: ("noop log rate", "bench.b3_noop_log"),
    4: ("W&B offline log overhead", "bench.b4_wandb_log"),
    5: ("sync discovery", "bench.b5_discovery"),
    6: ("sync throughput", "bench.b6_sync"),
    7: ("sweep via run", "bench.b7_sweep"),
    8: ("MLflow replay", "bench.b8_mlflow_replay"),
    9: ("results on 10,000 jobs", "bench.b9_results"),
    10: ("W&B sweep vs hand-written", "bench.b10_wandb_sweep"),
    11: ("run -p 2 vs serial", "bench.b11_parallel"),
    12: ("status --since vs full status", "bench.b12_status_since"),
}

# Sizes per mode; an explicit option wins.
MODES = {
    "quick": {
        "reps": 3,
        "status_sizes": [1_000],
        "log_events": 20_000,
        "wandb_steps": 300,
        "discovery_jobs": 2_000,
        "discovery_runs": 60,
        "discovery_files": 50,
        "sync_runs": 10,
        "sweep_jobs": 40,
        "mlflow_runs": 20,
        "mlflow_steps": 300,
        "wandb_sweep_jobs": 10,
        "parallel_jobs": 40,
    },
    "default": {
        "reps": 5,
        "status_sizes": [1_000, 2_000, 10_000],
        "log_events": 50_000,
        "wandb_steps": 1_000,
        "discovery_jobs": 10_000,
        "discovery_runs": 300,
        "discovery_files": 200,
        "sync_runs": 50,
        "sweep_jobs": 200,
        "mlflow_runs": 200,
        "mlflow_steps": 1_000,
        "wandb_sweep_jobs": 500,
        "parallel_jobs": 200,
    },
}
MODES["quick"]["trivial_jobs"] = [60]
MODES["default"]["trivial_jobs"] = [500]
MODES["full"] = dict(
    MODES["default"], status_sizes=[1_000, 2_000, 10_000, 100_000], trivial_jobs=[500, 10_000]
)
# What CI runs before the tests: every benchmark once, at sizes that only prove it still runs
# and its checks (eligible counts, completed sides) hold; its timings mean nothing.
MODES["smoke"] = {
    "reps": 1,
    "status_sizes": [60],
    "log_events": 2_000,
    "wandb_steps": 30,
    "discovery_jobs": 100,
    "discovery_runs": 5,
    "discovery_files": 5,
    "sync_runs": 2,
    "sweep_jobs": 0,
    "trivial_jobs": [10],
    "mlflow_runs": 4,  # a warm-up round replays three
    "mlflow_steps": 20,
    "wandb_sweep_jobs": 2,
    "parallel_jobs": 4,
}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.replace(" ", "").split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, 3 repetitions")
    mode.add_argument(
        "--smoke", action="store_true", help="smallest sizes, 1 repetition; errors exit 1"
    )
    mode.add_argument("--full", action="store_true", help="also status on 100,000 jobs")
    p.add_argument("--strict", action="store_true", help="exit 1 when a benchmark errors")
    p.add_argument("--only", type=_ints, metavar="N[,N...]", help="benchmark numbers")
    p.add_argument("--reps", type=int, help="repetitions (some benchmarks scale this)")
    p.add_argument(
        "--status-sizes", type=_ints, metavar="N[,N...]", help="benchmark 1: jobs (sizes to run)"
    )
    p.add_argument("--log-events", type=int, metavar="N", help="benchmark 3: events per repetition")
    p.add_argument("--wandb-steps", type=int, metavar="N", help="benchmark 4: steps per block")
    p.add_argument("--discovery-jobs", type=int, metavar="N", help="benchmark 5: jobs")
    p.add_argument(
        "--discovery-runs", type=int, metavar="N", help="benchmark 5: jobs with offline runs"
    )
    p.add_argument(
        "--discovery-files", type=int, metavar="N", help="benchmark 5: files per offline run"
    )
    p.add_argument("--sync-runs", type=int, metavar="N", help="benchmark 6: real offline runs")
    p.add_argument(
        "--sweep-jobs", type=int, metavar="N", help="benchmark 7: 45 ms jobs (0: leave out)"
    )
    p.add_argument(
        "--trivial-jobs", type=_ints, metavar="N[,N...]", help="benchmark 7: trivial jobs (sizes)"
    )
    p.add_argument("--mlflow-runs", type=int, metavar="N", help="benchmark 8: runs replayed")
    p.add_argument("--mlflow-steps", type=int, metavar="N", help="benchmark 8: rows per run")
    p.add_argument(
        "--wandb-sweep-jobs", type=int, metavar="N", help="benchmark 10: jobs in the W&B sweep"
    )
    p.add_argument("--parallel-jobs", type=int, metavar="N", help="benchmark 11: 50 ms jobs")
    p.add_argument("--cache", type=Path, default=CACHE, help=f"default {CACHE}")
    p.add_argument("--out", type=Path, help="results JSON (default bench/results/<time>.json)")
    args = p.parse_args(argv)
    args.mode = (
        "quick" if args.quick else "smoke" if args.smoke else "full" if args.full else "default"
    )
    args.strict = args.strict or args.smoke
    for key, value in MODES[args.mode].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.only = args.only or sorted(BENCHMARKS)
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown benchmark(s) {sorted(unknown)}; they are {sorted(BENCHMARKS)}")
    args.cache = args.cache.resolve()
    return args


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 1024**2, 1)
                    break
    except OSError:
        pass
    versions = {}
    for dist in ("signac", "signac-flow", "wandb", "mlflow", "agentic-experiments"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "mem_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git": f"{commit}{'+dirty' if dirty else ''}",
    }


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value >= 0.01 else f"{value * 1000:.2f} ms"
    if value < 1000:
        return f"{value:.1f} {unit}"
    return f"{value:,.0f} {unit}"


def table(results: list[Result], skipped: dict[int, str]) -> str:
    rows = [("#", "benchmark", "ours", "baseline", "ratio", "target", "")]
    for r in results:
        rows.append(
            (
                str(r.bench),
                r.name,
                _fmt(r.ours, r.unit),
                _fmt(r.baseline, r.unit),
                f"{r.ratio:.3f}",
                r.target,
                r.verdict,
            )
        )
    for number, why in skipped.items():
        rows.append((str(number), BENCHMARKS[number][0], "-", "-", "-", "-", f"skipped: {why}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        cells = [
            cell.rjust(w) if 2 <= i <= 4 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import importlib

    args = parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    results: list[Result] = []
    skipped: dict[int, str] = {}
    durations: dict[int, float] = {}
    for number in args.only:
        title, module_name = BENCHMARKS[number]
        log(f"[{number}] {title}")
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
            if hasattr(module, "available") and (why := module.available()):
                skipped[number] = why
                log(f"  skipped: {why}")
                continue
            results.extend(module.run(args))
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            skipped[number] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        finally:
            durations[number] = round(time.perf_counter() - t0, 1)
    text = table(results, skipped)
    print(text)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "mode": args.mode,
        "options": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("quick", "full", "smoke")
        },
        "machine": machine(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds_per_benchmark": durations,
        "results": [r.as_dict() | {"verdict": r.verdict} for r in results],
        "skipped": {str(k): v for k, v in skipped.items()},
        "table": text,
    }
    out = args.out or RESULTS / f"{started.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.out is None:
        (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log(f"results: {out}")
    errors = {n: why for n, why in skipped.items() if why.startswith("error:")}
    if errors and args.strict:
        log(f"benchmarks that did not run: {sorted(errors)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
