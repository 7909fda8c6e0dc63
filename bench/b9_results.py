"""Benchmark 9: the sweep's results on 10,000 and 100,000 jobs against a hand-written reader of
the same files, and the dashboard's first page against `python project.py status`.

The projects are benchmark 1's (bench/generate.py `status_project`, mix "finished": every run
finished, its journal 20 rows of loss and accuracy). Every side runs as a fresh process;
ours and the baseline alternate.

    runs, cold        `aexp runs --metrics loss:min,accuracy:max`, aexp's cache directory
                      deleted before each run, vs bench/baselines/results_reader.py: `json` of
                      every state point, document and journal, the same table printed (the two
                      outputs are checked to be the same text first). Judged: <= 1.3
    runs, warm        the same with the cache of the run before (journals this short are never
                      cached: reading them is cheaper); info
    peak memory       the peak RSS of the cold runs (ru_maxrss), ours vs the baseline's. Judged
                      at the largest size: <= 2; and per job: the growth of the peak from the
                      smallest size to the largest, per job added, ours vs the baseline's; info
    grouping          `aexp runs --group-by --metrics ...` vs the same `aexp runs` without it.
                      Judged: <= 1.10
    long journals     500 runs of 2,000 rows (bench/generate.py `long_journal_project`): cold
                      and warm vs the baseline; info (warm reads the per-run cache)
    runs --metrics loss   the last values, from the documents, vs `status`, 10,000 jobs (<= 2)
    dashboard         `python dashboard.py run` started until the sweep's page has arrived, vs
                      `status`, 10,000 jobs (<= 2); the page again and the figure: info
"""

from __future__ import annotations

import http.cookiejar
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH,
    PYTHON,
    Result,
    alternate,
    hermetic_env,
    log,
    make_result,
    run_timed,
)
from bench.generate import long_journal_project, status_project

LIMIT = 2.0  # against status
READER_LIMIT = 1.3  # against the hand-written reader
MEMORY_LIMIT = 2.0
GROUPING_LIMIT = 1.10
METRICS = ("loss:min", "accuracy:max")
SIZES = {"smoke": [200], "quick": [2_000], "default": [10_000, 100_000], "full": [10_000, 100_000]}
BASELINE = "baseline_results.py"


def available() -> str | None:
    import importlib.util

    missing = [m for m in ("signac_dashboard", "matplotlib") if importlib.util.find_spec(m) is None]
    return f"needs {', '.join(missing)} (the [dashboard] extra)" if missing else None


# The peak memory of a process counts the memory image it had before it exec'd its program:
# a child forked (or vforked) from this benchmark, which holds matplotlib and more, would report
# this process's size. So a small launcher forks the command and reports what wait4 says of it:
# its peak RSS and its wall-clock time (the launcher's own start-up left out).
_LAUNCHER = """
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\naexp-bench {usage.ru_maxrss} {time.perf_counter() - t0}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(args: list[str], cwd: Path, env: dict[str, str], out: Any = None) -> tuple[float, int]:
    """(wall-clock seconds, peak resident memory in KB) of one run of `args` (stdout to `out`,
    default discarded). Raises RuntimeError when it fails."""
    with tempfile.TemporaryFile() as err:
        code = subprocess.call(
            [PYTHON, "-c", _LAUNCHER, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=out if out is not None else subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        err.seek(0)
        text = err.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{text[-3000:]}")
    _, peak, seconds = text.rstrip().rsplit("\n", 1)[-1].split()
    return float(seconds), int(peak)


def _aexp(*args: str) -> list[str]:
    return [PYTHON, "-m", "aexp.cli", *args]


RUNS = _aexp("runs", "--metrics", ",".join(METRICS))
GROUPED = _aexp("runs", "--group-by", "--metrics", ",".join(METRICS))
READER = [PYTHON, BASELINE, *METRICS]


def _same_output(root: Path, env: dict[str, str]) -> None:
    """Ours and the baseline print the same table (so they do the same work)."""
    texts = []
    for args in (RUNS, READER):
        with tempfile.TemporaryFile() as out:
            measured(args, root, env, out)
            out.seek(0)
            texts.append(out.read())
    if texts[0] != texts[1]:
        raise RuntimeError("aexp runs and the hand-written reader print different tables")


def _reader_results(root: Path, env: dict[str, str], n: int, reps: int, label: str) -> dict:
    """Cold and warm `aexp runs` vs the reader, and the memory of each; returns the samples."""
    cache = root / ".aexp" / "cache"
    memory: dict[str, list[int]] = {"ours": [], "baseline": []}

    def cold() -> float:
        shutil.rmtree(cache, ignore_errors=True)
        seconds, peak = measured(RUNS, root, env)
        memory["ours"].append(peak)
        return seconds

    def reader() -> float:
        seconds, peak = measured(READER, root, env)
        memory["baseline"].append(peak)
        return seconds

    log(f"  aexp runs (cold) vs the hand-written reader, {label}: {reps} alternating rounds")
    a, b = alternate(cold, reader, reps)
    memory = {k: v[-reps:] for k, v in memory.items()}  # the warm-up round left out
    shutil.rmtree(cache, ignore_errors=True)
    measured(RUNS, root, env)  # fills whatever cache there is
    log(f"  aexp runs (warm) vs the hand-written reader, {label}: {reps} alternating rounds")
    w, wb = alternate(
        lambda: measured(RUNS, root, env)[0], lambda: measured(READER, root, env)[0], reps
    )
    return {"cold": (a, b), "warm": (w, wb), "memory": memory, "jobs": n}


def _grouping(root: Path, env: dict[str, str], reps: int) -> tuple[list[float], list[float]]:
    return alternate(
        lambda: measured(GROUPED, root, env)[0], lambda: measured(RUNS, root, env)[0], reps
    )


def run(opts: Any) -> list[Result]:
    sizes = SIZES[opts.mode]
    reps = opts.reps
    results: list[Result] = []
    peaks: dict[int, dict[str, list[int]]] = {}
    for n in sizes:
        root = status_project(n, cache=opts.cache, mix="finished")
        shutil.copy2(BENCH / "baselines" / "results_reader.py", root / BASELINE)
        env = hermetic_env(root / ".bench-env")
        _same_output(root, env)
        found = _reader_results(root, env, n, reps, f"{n} jobs")
        (a, b), (w, wb) = found["cold"], found["warm"]
        extra = {"jobs": n, "metrics": list(METRICS)}
        results.append(make_result(
            f"runs --metrics {','.join(METRICS)}, cold, {n} jobs", 9, a, b, limit=READER_LIMIT,
            notes="aexp runs (its cache deleted) vs a hand-written json reader, same output",
            extra=extra,
        ))  # fmt: skip
        results.append(make_result(
            f"runs, warm, {n} jobs", 9, w, wb, limit=READER_LIMIT, judged=False,
            notes="the same, aexp's cache as the run before left it", extra=extra,
        ))  # fmt: skip
        mem = found["memory"]
        peaks[n] = mem
        results.append(make_result(
            f"runs peak memory, {n} jobs", 9, [k / 1024 for k in mem["ours"]],
            [k / 1024 for k in mem["baseline"]], unit="MB", limit=MEMORY_LIMIT,
            judged=n == max(sizes), notes="peak RSS (ru_maxrss) of the cold runs", extra=extra,
        ))  # fmt: skip
        log(f"  aexp runs --group-by vs aexp runs, {n} jobs: {reps} alternating rounds")
        g, u = _grouping(root, env, reps)
        results.append(make_result(
            f"runs --group-by vs runs, {n} jobs", 9, g, u, limit=GROUPING_LIMIT,
            notes="grouping by configuration (the keys that vary, but seed) over the same read",
            extra=extra,
        ))  # fmt: skip
    if len(sizes) > 1:  # memory per job: the growth of the peak between the sizes
        low, high = min(sizes), max(sizes)

        def per_job(side: str) -> list[float]:
            return [
                (hi - lo) * 1024 / (high - low)
                for hi, lo in zip(peaks[high][side], peaks[low][side], strict=True)
            ]

        results.append(make_result(
            f"runs memory per job, {low} -> {high} jobs", 9, per_job("ours"),
            per_job("baseline"), unit="B/job", limit=MEMORY_LIMIT, judged=False,
            notes="growth of the peak RSS per job added, ours vs the reader's",
            extra={"sizes": [low, high]},
        ))  # fmt: skip
    results.extend(_long_journals(opts))
    results.extend(_against_status(opts))
    return results


def _long_journals(opts: Any) -> list[Result]:
    n_jobs, rows = {"smoke": (20, 100), "quick": (100, 500)}.get(opts.mode, (500, 2_000))
    root = long_journal_project(n_jobs, rows, cache=opts.cache)
    shutil.copy2(BENCH / "baselines" / "results_reader.py", root / BASELINE)
    env = hermetic_env(root / ".bench-env")
    _same_output(root, env)
    found = _reader_results(root, env, n_jobs, opts.reps, f"{n_jobs} runs of {rows} rows")
    extra = {"jobs": n_jobs, "rows": rows}
    (a, b), (w, wb) = found["cold"], found["warm"]
    return [
        make_result(
            f"runs, cold, {n_jobs} runs of {rows} rows", 9, a, b, limit=READER_LIMIT,
            judged=False, notes="every journal read; long ones cached as they are", extra=extra,
        ),
        make_result(
            f"runs, warm, {n_jobs} runs of {rows} rows", 9, w, wb, limit=READER_LIMIT,
            judged=False, notes="the per-run cache read instead of the journals", extra=extra,
        ),
    ]  # fmt: skip


def _against_status(opts: Any) -> list[Result]:
    jobs = {"smoke": 200, "quick": 2_000}.get(opts.mode, 10_000)
    root = status_project(jobs, cache=opts.cache)
    shutil.copy2(Path(__file__).resolve().parent.parent / "dashboard.py", root / "dashboard.py")
    env = hermetic_env(root / ".bench-env")
    status = [PYTHON, "project.py", "status"]
    reps = opts.reps
    results = []
    log(f"  aexp runs --metrics loss vs status, {jobs} jobs: {reps} alternating repetitions")
    a, b = alternate(
        lambda: run_timed(_aexp("runs", "--metrics", "loss"), root, env),
        lambda: run_timed(status, root, env),
        reps,
    )
    results.append(make_result(
        f"runs --metrics loss, {jobs} jobs", 9, a, b, limit=LIMIT,
        notes="aexp runs --metrics loss vs python project.py status", extra={"jobs": jobs},
    ))  # fmt: skip
    log(f"  dashboard's first page vs status, {jobs} jobs: {reps} alternating repetitions")
    samples: list[dict[str, float]] = []

    def dashboard() -> float:
        samples.append(_dashboard(root, env))
        return samples[-1]["first"]

    a, b = alternate(dashboard, lambda: run_timed(status, root, env), reps)
    samples = samples[-reps:]  # the warm-up's sample (style sheets built then) left out
    results.append(make_result(
        f"dashboard first page, {jobs} jobs", 9, a, b, limit=LIMIT,
        notes="python dashboard.py run started -> the sweep's page received, vs status",
        extra={"jobs": jobs},
    ))  # fmt: skip
    for key, name in (("warm", "dashboard page again"), ("figure", "dashboard sweep figure")):
        values = [s[key] for s in samples]
        results.append(make_result(
            f"{name}, {jobs} jobs", 9, values, b, limit=LIMIT, judged=False,
            notes="in the running server, vs a whole status", extra={"jobs": jobs},
        ))  # fmt: skip
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dashboard(root: Path, env: dict[str, str]) -> dict[str, float]:
    """Start the dashboard, open its first page as a browser would (login URL, redirect to the
    sweep's page); seconds from the start to that page, then the page again and the figure."""
    port = _free_port()
    t0 = time.perf_counter()
    server = subprocess.Popen(
        [PYTHON, "dashboard.py", "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        login = None
        while login is None:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                raise RuntimeError("the dashboard exited before printing its login URL")
            found = re.search(r"(http://\S+/login\?token=[0-9a-f]+)", line)
            login = found.group(1) if found else None
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = _get(opener, login, wait_for_server=True)
        first = time.perf_counter() - t0
        if 'id="aexp-runs"' not in page:
            raise RuntimeError("the first page is not the sweep's page")
        base = login.split("/login")[0]
        t1 = time.perf_counter()
        _get(opener, f"{base}/project/")
        warm = time.perf_counter() - t1
        src = re.search(r'id="aexp-sweep-plot" src="([^"]+)"', page).group(1).replace("&amp;", "&")
        t2 = time.perf_counter()
        svg = _get(opener, base + src)
        figure = time.perf_counter() - t2
        if "<svg" not in svg:
            raise RuntimeError("the sweep figure is not an SVG")
        return {"first": first, "warm": warm, "figure": figure}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _get(opener: Any, url: str, *, wait_for_server: bool = False) -> str:
    deadline = time.monotonic() + 120
    while True:
        try:
            with opener.open(url, timeout=600) as response:
                return response.read().decode()
        except ConnectionRefusedError:
            if not wait_for_server or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or not wait_for_server:
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
