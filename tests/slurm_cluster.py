"""The real SLURM cluster as the SLURM tests drive it: a template copy that submits through flow's
DefaultSlurmEnvironment, and the job's own records (documents, journals, batch output).

Every test submits from a copy of the template in its temp dir (the compute node is this
machine, so it sees the same files), identifies its own SLURM jobs by the names it submitted (the
cluster is shared: other tests may submit to it too), waits with bounded waits, and cancels what
it left queued.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc

import aexp
from aexp.trackers.noop import EVENTS_FILE, LOG_DIR

SLURM_ENV = "DefaultSlurmEnvironment"


class Cluster:
    """The template copy of one test, submitting to the real cluster."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.said = ""  # what the last `submit` printed
        self.names: list[str] = []  # SLURM job names (flow's ids) this test submitted
        self.env = {
            **os.environ,
            "SIGNAC_FLOW_ENVIRONMENT": SLURM_ENV,
            "AEXP_HEARTBEAT": "1",  # last_step in job.doc follows the run closely
        }

    def flow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = run_cmd([PYTHON, "project.py", *args], cwd=self.root, env=self.env, timeout=120)
        if check and result.returncode != 0:
            pytest.fail(f"project.py {' '.join(args)} exited {result.returncode}:\n"
                        f"{result.stdout}\n{result.stderr}\n{self.logs()}")  # fmt: skip
        return result

    def submit(self, *args: str, check: bool = True) -> list[str]:
        """Submit; returns the SLURM job names sent (`self.said`: what submit printed)."""
        result = self.flow("submit", *args, check=check)
        self.said = result.stdout + result.stderr
        names = re.findall(r"Submitting cluster job '([^']+)'", result.stderr)
        assert names or not check, result.stderr
        self.names += names
        return names

    def sent(self) -> list[tuple[str, str, bool]]:
        """(job id, SLURM job id, canary?) of each job the last `submit` sent, in order."""
        found = re.findall(
            r" - Group: run_job\((\w+)\)\n - SLURM job (\d+)( \(canary\))?", self.said
        )
        return [(job, slurm_id, bool(flag)) for job, slurm_id, flag in found]

    def reasons(self) -> dict[str, tuple[str, str]]:
        """Our jobs in the queue: SLURM job id -> (state, reason), from squeue."""
        out = subprocess.run(
            ["squeue", "-h", "-o", "%i|%T|%r|%j"], capture_output=True, text=True, timeout=30
        ).stdout
        rows = (line.split("|", 3) for line in out.splitlines() if line.count("|") >= 3)
        return {jid: (st, why) for jid, st, why, name in rows if name in self.names}

    def queue(self) -> dict[str, tuple[str, str]]:
        """Our jobs still in the queue: name -> (SLURM job id, state code)."""
        out = subprocess.run(
            ["squeue", "-h", "-o", "%i|%t|%j"], capture_output=True, text=True, timeout=30
        ).stdout
        rows = (line.split("|", 2) for line in out.splitlines() if line.count("|") >= 2)
        return {name: (jid, st) for jid, st, name in rows if name in self.names}

    def slurm_id(self, name: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self.queue():
                return self.queue()[name][0]
            time.sleep(0.5)
        pytest.fail(f"{name} never showed up in squeue\n{self.logs()}")

    def wait_until_drained(self, timeout: float) -> float:
        """Wait until none of our jobs is queued or running; returns the seconds waited."""
        t0 = time.monotonic()
        while self.queue():
            if time.monotonic() - t0 > timeout:
                pytest.fail(f"jobs still queued after {timeout:.0f} s: {self.queue()}\n"
                            f"{self.logs()}")  # fmt: skip
            time.sleep(1)
        return time.monotonic() - t0

    def show(self, slurm_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (finished jobs stay visible for MinJobAge)."""
        out = subprocess.run(
            ["scontrol", "-o", "show", "job", slurm_id], capture_output=True, text=True, timeout=30
        ).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def log_text(self, slurm_id: str) -> str:
        return (self.root / "logs" / f"slurm-{slurm_id}.out").read_text()

    def logs(self) -> str:
        parts = [f"----- {p} -----\n{p.read_text()}" for p in sorted(self.root.glob("logs/*"))]
        return "\n".join(parts) or "(no batch output in logs/)"

    def cancel_leftovers(self) -> None:
        ids = [jid for jid, _ in self.queue().values()]
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


def cluster_of(template: Path) -> Iterator[Cluster]:
    """The body of a test module's `cluster` fixture: a Cluster on the test's template copy;
    afterwards what the test left queued is cancelled and the batch output printed (pytest shows
    it when the test failed)."""
    c = Cluster(template)
    yield c
    c.cancel_leftovers()
    print(c.logs())


def noop(cluster: Cluster) -> Cluster:
    set_rc(cluster.root, "tracker", "backend", "noop")
    return cluster


def sweep(n: int, **statepoint: object) -> list:
    # A nonce keeps job ids (and so SLURM job names) apart from any other run of these tests.
    nonce = uuid.uuid4().hex[:8]
    return [
        aexp.create_run(
            experiment_id="E018",
            hypothesis_id="H012",
            statepoint={"condition": "full", "seed": seed, "nonce": nonce, **statepoint},
        )
        for seed in range(n)
    ]


def doc(job) -> dict:
    path = Path(job.path, "signac_job_document.json")
    return json.loads(path.read_text()) if path.exists() else {}


def events(job) -> list[dict]:
    (path,) = Path(job.path, LOG_DIR).glob(f"*/{EVENTS_FILE}")
    return [json.loads(line) for line in path.read_text().splitlines()]


def logged(job, key: str = "step") -> list:
    return [
        e[key] if key == "step" else e["metrics"][key] for e in events(job) if e["event"] == "log"
    ]


def wait_running(cluster: Cluster, jobs: list, min_step: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trackers = [doc(job).get("tracker", {}) for job in jobs]
        if all(
            t.get("state") == "running" and t.get("last_step", -1) >= min_step for t in trackers
        ):
            return
        time.sleep(0.5)
    pytest.fail(f"not running after {timeout} s: {[doc(j) for j in jobs]}\n{cluster.logs()}")


def stamp(line: str) -> datetime:
    return datetime.strptime(line.split(" ", 1)[1][:19], "%Y-%m-%d %H:%M:%S")
