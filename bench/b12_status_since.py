"""Benchmark 12: `status --since CURSOR` (what changed) against a full status, at 10,000 jobs
with 10 of them changed between polls.

The project is benchmark 1's mix of states (bench/generate.py `status_project`), generated in a
cache of its own (this benchmark rewrites documents). Each round rewrites 10 random job
documents as an attempt's end does (a temporary file renamed over the document; the run's
attempt count moves), then times, alternating:

    ours       aexp.reports.changes.changes_document(root, cursor): the changes and a new
               cursor (one stat per job directory, the running jobs' heartbeats judged again,
               the changed documents read)
    baseline   aexp.reports.status.status_document(root): every job document read, the
               document and a cursor

both in one process, as the MCP server answers its `status` tool (judged: <= 0.1). Before
timing, the changes are checked: exactly the 10 rewritten jobs are read and reported. Also
(info): the same through the command line, `aexp status --json --since C` against
`aexp status --json`, and against `python project.py status`, each a fresh process.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Result, alternate, hermetic_env, log, make_result, run_timed
from bench.generate import status_project

LIMIT = 0.1
JOBS = 10_000
CHANGES = 10


def _touch_documents(root: Path, rng: random.Random) -> list[str]:
    """Rewrite CHANGES random bound job documents as an attempt's end would; their ids."""
    workspace = root / "workspace"
    names = sorted(os.listdir(workspace))
    chosen: list[str] = []
    while len(chosen) < CHANGES:
        name = rng.choice(names)
        path = workspace / name / "signac_job_document.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if name in chosen or not isinstance(doc.get("tracker"), dict):
            continue
        doc["tracker"]["attempts"] = doc["tracker"].get("attempts", 0) + 1
        tmp = path.with_name(path.name + ".bench.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
        chosen.append(name)
    return chosen


def run(opts: Any) -> list[Result]:
    from aexp.reports.changes import changes_document
    from aexp.reports.status import status_document

    root = status_project(JOBS, cache=opts.cache / "since")
    stale_after = 300.0
    rng = random.Random(12)
    cursor = status_document(root, stale_after=stale_after)["cursor"]
    time.sleep(0.05)
    touched = _touch_documents(root, rng)
    time.sleep(0.05)  # past the file system's clock tick (docs/json.md)
    check = changes_document(root, cursor, stale_after=stale_after)
    changed = {c["job_id"] for c in check["changes"]}
    if check["read"] != CHANGES or changed != set(touched):
        raise RuntimeError(f"--since read {check['read']} jobs and reported {sorted(changed)}, "
                           f"not the {CHANGES} rewritten: {sorted(touched)}")  # fmt: skip
    cursor = check["cursor"]
    state = {"cursor": cursor}

    def ours() -> float:
        _touch_documents(root, rng)
        time.sleep(0.02)
        t0 = time.perf_counter()
        doc = changes_document(root, state["cursor"], stale_after=stale_after)
        elapsed = time.perf_counter() - t0
        state["cursor"] = doc["cursor"]
        return elapsed

    def full() -> float:
        t0 = time.perf_counter()
        status_document(root, stale_after=stale_after)
        return time.perf_counter() - t0

    reps = max(opts.reps * 2, 6)
    log(f"  status --since vs full status, {JOBS} jobs, {CHANGES} changed: {reps} rounds")
    a, b = alternate(ours, full, reps)
    results = [
        make_result(
            f"status --since, {JOBS} jobs, {CHANGES} changed (in process)",
            12,
            a,
            b,
            limit=LIMIT,
            notes="changes_document vs status_document, as the MCP status tool runs them",
            extra={"jobs": JOBS, "changes": CHANGES},
        )
    ]
    env = hermetic_env(root / ".bench-env")
    cli = [PYTHON, "-m", "aexp.cli", "status", "--json"]

    def cli_since() -> float:
        _touch_documents(root, rng)
        time.sleep(0.02)
        t0 = time.perf_counter()
        out = _output([*cli, "--since", state["cursor"]], root, env)
        elapsed = time.perf_counter() - t0
        state["cursor"] = json.loads(out)["cursor"]
        return elapsed

    log(f"  aexp status --json --since vs aexp status --json (fresh processes): {opts.reps} rounds")
    a, b = alternate(cli_since, lambda: run_timed(cli, root, env), opts.reps)
    results.append(
        make_result(
            f"aexp status --since vs --json, {JOBS} jobs (CLI)",
            12,
            a,
            b,
            limit=LIMIT,
            judged=False,
            notes="fresh processes: Python's and aexp's start-up included on both sides",
        )
    )
    log(f"  aexp status --json --since vs python project.py status: {opts.reps} rounds")
    a, b = alternate(
        cli_since, lambda: run_timed([PYTHON, "project.py", "status"], root, env), opts.reps
    )
    results.append(
        make_result(
            f"aexp status --since vs project.py status, {JOBS} jobs",
            12,
            a,
            b,
            limit=LIMIT,
            judged=False,
            notes="what an agent polled before: flow's full status",
        )
    )
    return results


def _output(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    import subprocess

    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


__all__ = ["run"]
