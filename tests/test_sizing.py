"""Sized from history: each attempt records its wall time and the peak memory of its process tree;
`aexp resources` turns a project's attempts into walltime and memory (a high quantile plus a
margin, with n) and names the attempts preempted at the time limit; `[slurm] walltime = auto` /
`memory = auto` hand them to sbatch. Real processes, real journals; the SLURM side is in
tests/test_slurm_scale.py.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc

from aexp import create_run, get_binding
from aexp.journal import journal_path
from aexp.slurm.sizing import Suggestion, nearest_rank
from aexp.slurm.submission import sizing_flags

AEXP = str(Path(PYTHON).parent / "aexp")

HOLDING = """\
import subprocess
import sys
import time


def experiment(job, tracker):
    held = bytearray(b"1") * (int(job.sp.get("alloc_mb", 0)) * 2**20)
    child = int(job.sp.get("child_mb", 0))
    if child:
        code = f"b = bytearray(b'1') * ({child} * 2**20)"
        subprocess.run([sys.executable, "-c", code], check=True)
    tracker.log({"held": len(held)}, step=0)
    time.sleep(float(job.sp.get("seconds", 0)))
"""


def _finish(job) -> dict:
    path = journal_path(job.path, get_binding(job)["run_id"])
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if e["event"] == "finish"][-1]


def test_each_attempt_records_its_wall_time_and_its_process_trees_peak_memory(
    template: Path,
) -> None:
    set_rc(template, "tracker", "backend", "noop")
    (template / "experiment.py").write_text(HOLDING)
    sizes = {"plain": {}, "held": {"alloc_mb": 250}, "child": {"child_mb": 150}, "slow": {}}
    sizes["slow"]["seconds"] = 1.5
    jobs = {
        name: create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"case": name, **sp})
        for name, sp in sizes.items()
    }
    # One process runs them all, one after another: each attempt reports its own peak.
    run_cmd([PYTHON, "project.py", "run"], cwd=template, check=True, timeout=120)
    peak = {name: _finish(job)["peak_rss_mb"] for name, job in jobs.items()}
    print(f"peak memory (MiB): {peak}")
    base = peak["plain"]
    assert 240 <= peak["held"] - base <= 265, peak
    assert 150 <= peak["child"] - base <= 185, peak  # the child's interpreter too
    assert abs(peak["slow"] - base) < 15, "an earlier attempt's peak is not this one's"
    assert 1.5 <= _finish(jobs["slow"])["wall_s"] < 1.5 + 3
    assert _finish(jobs["plain"])["wall_s"] < 2
    for job in jobs.values():
        doc = json.loads(Path(job.path, "signac_job_document.json").read_text())
        assert doc["peak_rss_mb"] == _finish(job)["peak_rss_mb"]


# -- aexp resources from a history of attempts -----------------------------------------------
def _history(root: Path, runs: list[list[dict]], first: int = 0) -> list[str]:
    """Jobs whose runs' journals hold these attempts' `finish` events; returns their ids."""
    ids = []
    for index, attempts in enumerate(runs, start=first):
        job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"i": index})
        path = Path(job.path, "tracker_log", f"run{index:05d}", "events.jsonl")
        path.parent.mkdir(parents=True)
        lines = [{"timestamp": "2026-01-01T00:00:00.000000+00:00", "event": "init_run"}]
        for number, finish in enumerate(attempts, start=1):
            lines.append({"timestamp": "2026-01-01T00:00:01.000000+00:00",
                          "event": "resume_run", "attempt": number})  # fmt: skip
            end = {"event": "finish", "attempt": number, "preempted": False, "exit_code": 0}
            lines.append({"timestamp": "2026-01-01T00:00:02.000000+00:00", **end, **finish})
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        ids.append(job.id)
    return ids


def _done(wall: float, peak: float) -> dict:
    return {"wall_s": wall, "peak_rss_mb": peak}


AT_LIMIT = {"preempted": True, "exit_code": 138}  # SIGUSR1: [slurm] warning_signal


@pytest.fixture
def history(project) -> tuple[Path, list[str]]:
    root = Path(project.path)
    runs = [[_done(100.0 * i, 100.0 * i)] for i in range(1, 11)]  # 100..1000 s, MiB
    runs.append([{**_done(700.0, 300.0), **AT_LIMIT}, _done(650.0, 1200.0)])  # 1350 s in all
    runs.append([{**_done(50.0, 80.0), "preempted": True, "exit_code": 138, "stalled": True}])
    runs.append([{**_done(30.0, 2000.0), "exit_code": 1}])  # failed: its memory counts
    runs.append([{"preempted": False, "exit_code": 0}])  # measured by no aexp of old: left out
    return root, _history(root, runs)


def test_aexp_resources_suggests_a_high_quantile_plus_a_margin_with_n(history) -> None:
    root, ids = history
    found = json.loads(run_cmd([AEXP, "resources", "--json"], cwd=root, check=True).stdout)
    assert found["schema"] == "aexp.resources/1" and found["min_runs"] == 3
    (sized,) = found["operations"]
    walls = [100.0 * i for i in range(1, 11)] + [1350.0]  # finished runs, their attempts summed
    peaks = [100.0 * i for i in range(1, 11)] + [1200.0, 80.0, 2000.0]
    assert sized["wall_runs"] == 11 and sized["memory_runs"] == 13
    assert sized["wall_quantile_s"] == nearest_rank(walls, 0.95) == 1350.0
    assert sized["walltime_s"] == math.ceil((1350 * 1.25 + 120 + 30) / 60) * 60 == 1860
    assert sized["memory_quantile_mb"] == nearest_rank(peaks, 0.95) == 2000.0
    assert sized["memory_mb"] == math.ceil(2000 * 1.25 / 64) * 64 == 2560
    assert sized["at_time_limit"] == {"attempts": 1, "jobs": {ids[10]: 1}}
    assert sized["stalled_attempts"] == 1

    median = json.loads(run_cmd([AEXP, "resources", "--json", "--quantile", "0.5", "--margin",
                                 "0"], cwd=root, check=True).stdout)["operations"][0]  # fmt: skip
    assert median["wall_quantile_s"] == 600.0 and median["walltime_s"] == 780  # 600+150 s
    assert median["memory_quantile_mb"] == 600.0 and median["memory_mb"] == 640

    text = run_cmd([AEXP, "resources"], cwd=root, check=True).stdout
    assert re.search(r"^execute\s+0:31:00\s+p95 0:22:30 of 11 finished runs\s+2560M", text, re.M)
    assert (
        f"1 attempt(s) of 1 job(s) were preempted at the time limit: the walltime was too short "
        f"({ids[10]})." in text
    )
    bad = run_cmd([AEXP, "resources", "--quantile", "2"], cwd=root)
    assert bad.returncode == 2 and "aexp: error:" in bad.stderr and "Traceback" not in bad.stderr


def test_submit_with_walltime_and_memory_auto_asks_sbatch_for_the_suggestion(
    template: Path,
) -> None:
    set_rc(template, "tracker", "backend", "noop")
    set_rc(template, "slurm", "walltime", "auto")
    set_rc(template, "slurm", "memory", "auto")
    _history(template, [[_done(600.0, 400.0)], [_done(300.0, 300.0)]])
    two = run_cmd([PYTHON, "project.py", "submit", "--pretend"], cwd=template, check=True)
    assert "walltime = auto: 2 measured run(s), 3 needed; the directive stands" in two.stderr
    assert "--time=" not in two.stdout and "--mem=" not in two.stdout

    _history(template, [[_done(900.0, 500.0)]], first=2)
    three = run_cmd([PYTHON, "project.py", "submit", "--pretend"], cwd=template, check=True)
    minutes = math.ceil((900 * 1.25 + 150) / 60)  # 22
    assert f"walltime {minutes} min from 3 finished runs; memory 640 MiB from 3 runs" in (
        three.stderr
    )
    assert f"# Submit command: sbatch --time={minutes} --mem=640M" in three.stdout
    mine = run_cmd([PYTHON, "project.py", "submit", "--pretend", "--", "--time=30"],
                   cwd=template, check=True)  # fmt: skip
    assert "# Submit command: sbatch --time=30 --mem=640M" in mine.stdout, "--time given wins"


@pytest.mark.parametrize(
    ("size", "parallel", "given", "expected"),
    [
        (1, False, [], ["--time=22", "--mem=640M"]),
        (3, False, [], ["--time=66", "--mem=640M"]),  # one after another: times add up
        (3, True, [], ["--time=22", "--mem=1920M"]),  # side by side: memory adds up
        (1, False, ["-t", "5"], ["--mem=640M"]),
        (1, False, ["--mem=2G"], ["--time=22"]),
    ],
)
def test_sizing_flags_for_a_bundle(size, parallel, given, expected) -> None:
    sizes = Suggestion("execute", 1320, 900.0, 3, 640, 500.0, 3, {}, 0)
    flags = sizing_flags(size, parallel, sizes, given, want="walltime and memory")
    assert flags == expected
    thin = Suggestion("execute", 1320, 900.0, 2, 640, 500.0, 2, {}, 0)
    assert sizing_flags(size, parallel, thin, given, want="walltime and memory") == []
