"""Benchmark 9: the sweep's results on 10,000 jobs (`aexp runs --metrics`, the dashboard's first
page) against `python project.py status` on the same project.

The project is benchmark 1's (bench/generate.py: jobs in mixed states, each job that ran with
its run's journal of 20 rows). Every side runs as a fresh process, alternating with status.

    runs --metrics loss        the last values, from the job documents' summaries (judged: <= 2)
    runs --metrics loss:min    a reduction: every journal read (cold: the cache deleted before
                               each run) and again with the cache of the run before (warm); info
    dashboard first page       `python dashboard.py run` started, the printed login URL opened,
                               until the sweep's page has arrived (judged: <= 2)
    dashboard page, warm       the sweep's page once more in the same server; info
    dashboard sweep figure     /aexp/sweep.svg (the first 400 runs' journals, drawn); info
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Result, alternate, hermetic_env, log, make_result, run_timed
from bench.generate import status_project

LIMIT = 2.0
JOBS = 10_000


def available() -> str | None:
    import importlib.util

    missing = [m for m in ("signac_dashboard", "matplotlib") if importlib.util.find_spec(m) is None]
    return f"needs {', '.join(missing)} (the [dashboard] extra)" if missing else None


def _aexp(root: Path, env: dict[str, str], *args: str) -> float:
    return run_timed([PYTHON, "-m", "aexp.cli", *args], root, env)


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


def run(opts: Any) -> list[Result]:
    root = status_project(JOBS, cache=opts.cache)
    shutil.copy2(Path(__file__).resolve().parent.parent / "dashboard.py", root / "dashboard.py")
    env = hermetic_env(root / ".bench-env")
    status = [PYTHON, "project.py", "status"]
    cache = root / ".aexp" / "cache" / "journal-stats.json"
    reps = opts.reps
    results = []

    log(f"  aexp runs --metrics loss vs status, {JOBS} jobs: {reps} alternating repetitions")
    a, b = alternate(
        lambda: _aexp(root, env, "runs", "--metrics", "loss"),
        lambda: run_timed(status, root, env),
        reps,
    )
    results.append(
        make_result(
            f"runs --metrics loss, {JOBS} jobs",
            9,
            a,
            b,
            limit=LIMIT,
            notes="aexp runs --metrics loss vs python project.py status",
            extra={"jobs": JOBS},
        )
    )

    def cold() -> float:
        if cache.exists():
            os.unlink(cache)
        return _aexp(root, env, "runs", "--metrics", "loss:min")

    log(f"  aexp runs --metrics loss:min (cold and warm cache) vs status: {reps} repetitions")
    a, b = alternate(cold, lambda: run_timed(status, root, env), reps)
    results.append(
        make_result(
            f"runs --metrics loss:min, no cache, {JOBS} jobs",
            9,
            a,
            b,
            limit=LIMIT,
            judged=False,
            notes="every journal read (the cache deleted before each run)",
            extra={"jobs": JOBS},
        )
    )
    _aexp(root, env, "runs", "--metrics", "loss:min")  # fills the cache
    a, b = alternate(
        lambda: _aexp(root, env, "runs", "--metrics", "loss:min"),
        lambda: run_timed(status, root, env),
        reps,
    )
    results.append(
        make_result(
            f"runs --metrics loss:min, cached, {JOBS} jobs",
            9,
            a,
            b,
            limit=LIMIT,
            judged=False,
            notes="journals unchanged since the cache was written",
            extra={"jobs": JOBS},
        )
    )

    log(f"  dashboard's first page vs status, {JOBS} jobs: {reps} alternating repetitions")
    samples: list[dict[str, float]] = []

    def dashboard() -> float:
        samples.append(_dashboard(root, env))
        return samples[-1]["first"]

    a, b = alternate(dashboard, lambda: run_timed(status, root, env), reps)
    samples = samples[-reps:]  # the warm-up's sample (style sheets built then) left out
    results.append(
        make_result(
            f"dashboard first page, {JOBS} jobs",
            9,
            a,
            b,
            limit=LIMIT,
            notes="python dashboard.py run started -> the sweep's page received, vs status",
            extra={"jobs": JOBS},
        )
    )
    for key, name in (("warm", "dashboard page again"), ("figure", "dashboard sweep figure")):
        values = [s[key] for s in samples]
        results.append(
            make_result(
                f"{name}, {JOBS} jobs",
                9,
                values,
                b,
                limit=LIMIT,
                judged=False,
                notes="in the running server, vs a whole status",
                extra={"jobs": JOBS},
            )
        )
    return results
