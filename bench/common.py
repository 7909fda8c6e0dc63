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
import tempfile
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
# The benchmarks run the template as the tests do: the same hermetic environment and files.
sys.path.insert(0, str(REPO / "tests"))
from conftest import CLOSED_URL, TEMPLATE_FILES  # noqa: E402, F401 (re-exported)
from conftest import hermetic_env as _test_env  # noqa: E402


def hermetic_env(root: Path, base_url: str = CLOSED_URL, **extra: str) -> dict[str, str]:
    """tests/conftest.py's `hermetic_env` (HOME/TMPDIR and every W&B directory in `root`, W&B's
    base URL a closed loopback port, its reporting off, flow forced to StandardEnvironment),
    plus `extra`, but with bytecode caching on: measure what users get, modules loading from
    their cache as signac's and flow's installed modules do.
    """
    env = _test_env(root, base_url)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
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


def run_timed_cpu(args: list[str], cwd: Path, env: dict[str, str], cpu: list[float]) -> float:
    """`run_timed`, also appending the child's CPU seconds (user + system) to `cpu`. On a machine
    shared with other work the wall clock of a command varies by +-30 % here; its CPU time much
    less (other processes take the core away, they do not add to this process's CPU time)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(
                f"{' '.join(args)} (in {cwd}) exited {proc.returncode}:\n"
                f"{err.read().decode(errors='replace')[-4000:]}"
            )
    cpu.append(usage.ru_utime + usage.ru_stime)
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
