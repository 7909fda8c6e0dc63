"""What every benchmark shares: paths, the hermetic environment, alternating timing, results.

Every benchmark times ours and its baseline in the same run, alternating (ours, baseline, ours,
...), several repetitions, after a warm-up of each, and reports the median of the per-repetition
ratios (ours / baseline for times, ours / baseline for rates where "higher is better").
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
PYTHON = sys.executable
# A loopback port nothing listens on: any stray W&B request fails at once, locally.
CLOSED_URL = "http://127.0.0.1:9"
# The template's files a user clones (what a generated project copies).
TEMPLATE_FILES = ("project.py", "experiment.py", "signac.rc", ".signac")


def hermetic_env(root: Path, base_url: str = CLOSED_URL, **extra: str) -> dict[str, str]:
    """os.environ plus what keeps aexp and wandb inside `root` and off the network.

    The same variables as tests/conftest.py's `hermetic_env`: HOME/TMPDIR and every W&B
    directory in `root`, W&B's base URL a closed loopback port, its telemetry and error
    reporting off, and flow's environment forced to StandardEnvironment (this machine has SLURM
    installed but not necessarily running). Unlike the tests, bytecode caching stays on.
    """
    home, tmp = root / "home", root / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WANDB_", "AEXP_", "SLURM_", "SIGNAC_"))
        # Measure what users get: modules load from their bytecode cache (written on first
        # import), as signac's and flow's installed modules do. Without this, every aexp
        # import would be compiled from source again.
        and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        WANDB_BASE_URL=base_url,
        WANDB_ERROR_REPORTING="false",
        WANDB__DISABLE_STATS="true",
        WANDB_SILENT="true",
        WANDB_DIR=str(tmp / "wandb"),
        WANDB_CONFIG_DIR=str(home / ".config" / "wandb"),
        WANDB_CACHE_DIR=str(home / ".cache" / "wandb"),
        WANDB_DATA_DIR=str(home / ".local" / "share" / "wandb"),
        WANDB_ARTIFACT_DIR=str(tmp / "artifacts"),
        SIGNAC_FLOW_ENVIRONMENT="StandardEnvironment",
    )
    env.update(extra)
    return env


def apply_env(env: dict[str, str]) -> None:
    """Make `env` this process's environment (for benchmarks that run in-process)."""
    for key in list(os.environ):
        if key not in env:
            del os.environ[key]
    os.environ.update(env)


def run_timed(
    args: list[str], cwd: Path, env: dict[str, str], *, check: bool = True, timeout: float = 3600
) -> float:
    """Wall-clock seconds of one subprocess (output discarded; stderr shown on failure)."""
    t0 = time.perf_counter()
    result = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    elapsed = time.perf_counter() - t0
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} (in {cwd}) exited {result.returncode}:\n"
            f"{result.stderr.decode(errors='replace')[-4000:]}"
        )
    return elapsed


@dataclass
class Result:
    """One benchmark line of the table (and of the results JSON)."""

    name: str  # e.g. "status 10000 jobs"
    bench: int  # the benchmark number
    unit: str  # "s" (lower is better) or "events/s" (higher is better)
    ours: float  # median of ours
    baseline: float  # median of the baseline
    ratio: float  # median of the per-repetition ratios (see `kind`)
    target: str  # e.g. "<= 1.15"
    passed: bool | None  # None: not judged (informational line)
    reps: int
    samples_ours: list[float] = field(default_factory=list)
    samples_baseline: list[float] = field(default_factory=list)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"


def alternate(
    ours: Callable[[], float],
    baseline: Callable[[], float],
    reps: int,
    *,
    warmup: int = 1,
) -> tuple[list[float], list[float]]:
    """Call ours and baseline alternately, `warmup` discarded rounds then `reps` measured ones.

    Each callable returns its own measurement (seconds, or a rate). The order within a round
    flips every round so neither side always runs on a cache the other just warmed.
    """
    for _ in range(warmup):
        ours()
        baseline()
    a: list[float] = []
    b: list[float] = []
    for i in range(reps):
        if i % 2 == 0:
            a.append(ours())
            b.append(baseline())
        else:
            b.append(baseline())
            a.append(ours())
    return a, b


def make_result(
    name: str,
    bench: int,
    a: list[float],
    b: list[float],
    *,
    unit: str = "s",
    limit: float,
    higher_is_better: bool = False,
    notes: str = "",
    extra: dict[str, Any] | None = None,
    judged: bool = True,
) -> Result:
    """Summarise paired samples: the ratio is ours/baseline per round, then the median.

    Lower-is-better (times): PASS if ratio <= limit. Higher-is-better (rates): PASS if
    ratio >= limit.
    """
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    ratio = statistics.median(ratios)
    if higher_is_better:
        target, passed = f">= {limit:g}", ratio >= limit
    else:
        target, passed = f"<= {limit:g}", ratio <= limit
    return Result(
        name=name,
        bench=bench,
        unit=unit,
        ours=statistics.median(a),
        baseline=statistics.median(b),
        ratio=ratio,
        target=target,
        passed=passed if judged else None,
        reps=len(a),
        samples_ours=[round(x, 6) for x in a],
        samples_baseline=[round(x, 6) for x in b],
        notes=notes,
        extra=extra or {},
    )


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)
