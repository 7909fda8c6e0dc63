"""`aexp status --since CURSOR`: the changes add up to a full status.

A model of the project starts as a full status (`aexp.status/1`); after each round of changes,
the changes since the last cursor are applied to it (each changed job's entry replaces its old
one, a removed job goes), and the model must equal a full status taken now. The changes are
those a sweep goes through: jobs created, runs finished, failed, preempted, an attempt killed
(no write at all: its process is gone), an attempt killed in its first second (its start is in
its run's journal only: aexp.state), re-armed, rerun, removed. Each entry is compared but for
`last_step`, which only a heartbeat moves without a change worth reporting (docs/json.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, copy_template, run_cmd, set_rc

from aexp import bind_tracker, create_run, run_lifecycle
from aexp.contract import check
from aexp.jobdoc import now_iso, update_doc
from aexp.rearming import rearm
from aexp.reports.changes import CursorError, changes_document
from aexp.reports.status import status_document
from aexp.rerun import rerun
from aexp.tracker import Preempted

# An attempt in a process of its own that binds an unbound job; it prints its run id once the
# attempt has started (recorded in the run's journal, not yet in the job's document).
_ATTEMPT = """
import sys, time
from aexp import NoopAdapter, open_project, run_lifecycle
from aexp.binding import adapters_of, new_binding
job = open_project(sys.argv[1]).open_job(id=sys.argv[2])
bind = lambda spec: new_binding(job, adapters_of(NoopAdapter()), project="since", offline=True,
                                tags=(), notes=None, spec=spec)
with run_lifecycle(job, bind=bind) as tracker:
    print(tracker.run_id, flush=True)
    time.sleep(60)
"""


def _view(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["job_id"]: {k: v for k, v in e.items() if k != "last_step"} for e in entries}


def _apply(model: dict[str, dict[str, Any]], changes: dict[str, Any]) -> None:
    for change in changes["changes"]:
        if change["job"] is None:
            del model[change["job_id"]]
        else:
            model[change["job_id"]] = _view([change["job"]])[change["job_id"]]


class Sweep:
    """The jobs of a project and the changes made to them, through aexp's own library."""

    def __init__(self, project: Any, rng: random.Random) -> None:
        self.project, self.rng = project, rng
        self.sleepers: dict[str, subprocess.Popen] = {}
        self.seed = 0

    def jobs(self, *states: str) -> list[Any]:
        found = []
        for job in self.project:
            state = (job.doc.get("tracker") or {}).get("state", "unbound")
            if not states or state in states:
                found.append(job)
        return sorted(found, key=lambda j: j.id)

    def create(self) -> None:
        self.seed += 1
        create_run(experiment_id="E1", statepoint={"seed": self.seed}, project=self.project)

    def bind(self, job: Any) -> None:
        bind_tracker(job, "noop", project="since")

    def attempt(self, job: Any, outcome: str) -> None:
        if "tracker" not in job.doc:
            self.bind(job)
        try:
            with run_lifecycle(job) as tracker:
                tracker.log({"loss": 1.0}, step=job.doc["tracker"]["attempts"])
                if outcome == "failed":
                    raise RuntimeError(f"failure {self.rng.random():.6f}")
                if outcome == "preempted":
                    raise Preempted(signal.SIGTERM)
        except (RuntimeError, Preempted):
            pass

    def start_running(self, job: Any) -> None:
        """An attempt that runs in another process of this host (a sleeper standing in)."""
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        self.sleepers[job.id] = sleeper

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            binding = {**doc["tracker"], "state": "running"}
            binding["attempts"] = binding.get("attempts", 0) + 1
            attempt = {"host": os.uname().nodename, "pid": sleeper.pid}
            return {"tracker": binding, "attempt": attempt, "heartbeat_at": now_iso()}

        update_doc(job, change)

    def flash(self, job: Any) -> None:
        """An attempt killed -9 as soon as it started: within its first second, so only its
        run's journal records it (the job document is as it was)."""
        child = subprocess.Popen(
            [sys.executable, "-c", _ATTEMPT, self.project.path, job.id],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip(), "the attempt never started"
        finally:
            child.kill()
            child.wait()
            child.stdout.close()

    def kill(self, job_id: str) -> None:
        """kill -9 the attempt: nothing is written anywhere."""
        sleeper = self.sleepers.pop(job_id)
        sleeper.kill()
        sleeper.wait()

    def step(self) -> str:
        """One random change; its name."""
        choices = ["create", "create"]
        if self.jobs("unbound"):
            choices += ["bind", "finish", "fail", "flash"]
        if self.jobs("bound", "preempted"):
            choices += ["finish", "fail", "preempt", "run", "run", "flash"]
        if [j for j in self.jobs("running") if j.id in self.sleepers]:
            choices += ["kill", "kill"]
        if self.jobs("failed"):
            choices += ["rearm", "rerun"]
        if self.jobs("finished", "failed", "bound", "unbound"):
            choices += ["remove", "rerun"]
        what = self.rng.choice(choices)
        if what == "create":
            self.create()
            return what
        if what == "kill":
            self.kill(
                self.rng.choice([j.id for j in self.jobs("running") if j.id in self.sleepers])
            )
            return what
        pools = {
            "bind": ("unbound",),
            "finish": ("unbound", "bound", "preempted"),
            "fail": ("unbound", "bound", "preempted"),
            "preempt": ("bound", "preempted"),
            "flash": ("unbound", "bound", "preempted"),
            "run": ("bound", "preempted"),
            "rearm": ("failed",),
            "rerun": ("finished", "failed"),
            "remove": ("finished", "failed", "bound", "unbound"),
        }
        pool = self.jobs(*pools[what])
        if not pool:
            return "nothing"
        job = self.rng.choice(pool)
        {
            "bind": self.bind,
            "finish": lambda j: self.attempt(j, "finished"),
            "fail": lambda j: self.attempt(j, "failed"),
            "preempt": lambda j: self.attempt(j, "preempted"),
            "run": self.start_running,
            "flash": self.flash,
            "rearm": rearm,
            "rerun": lambda j: rerun(j, force=True),
            "remove": lambda j: j.remove(),
        }[what](job)
        return what


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_changes_add_up_to_a_full_status(project: Any, seed: int) -> None:
    sweep = Sweep(project, random.Random(seed))
    try:
        for _ in range(6):
            sweep.create()
        first = status_document(project.path, stale_after=300)
        check(first)
        model, cursor = _view(first["jobs"]), first["cursor"]
        seen: set[str] = set()
        for _ in range(20):
            for _ in range(sweep.rng.randint(0, 4)):
                seen.add(sweep.step())
            changes = changes_document(project.path, cursor, stale_after=300)
            check(changes)
            assert changes["since"] == cursor
            _apply(model, changes)
            full = status_document(project.path, stale_after=300, cursor=False)
            now = _view(full["jobs"])
            differ = [
                (k, model.get(k), now.get(k)) for k in {*model, *now} if model.get(k) != now.get(k)
            ]
            assert not differ, (sorted(seen), differ)
            assert changes["total"] == full["total"]
            cursor = changes["cursor"]
        assert {"finish", "fail", "kill", "remove", "create", "flash"} <= seen
    finally:
        for sleeper in sweep.sleepers.values():
            sleeper.kill()
            sleeper.wait()


def test_each_kind_of_change_is_named(project: Any) -> None:
    sweep = Sweep(project, random.Random(0))
    for _ in range(6):
        sweep.create()
    jobs = sweep.jobs()
    cursor = status_document(project.path)["cursor"]
    sweep.attempt(jobs[0], "finished")
    sweep.attempt(jobs[1], "failed")
    sweep.attempt(jobs[2], "preempted")
    sweep.bind(jobs[3])
    sweep.start_running(jobs[3])
    jobs[4].remove()
    sweep.flash(jobs[5])  # its start, and its binding, in its run's journal only
    sweep.create()
    time.sleep(0.05)  # past the file system's clock tick: the next poll reads only what changed
    changes = changes_document(project.path, cursor)
    kinds = {c["job_id"]: (c["change"], c["was"]) for c in changes["changes"]}
    new = next(j for j in kinds if j not in {job.id for job in jobs})
    assert kinds == {
        jobs[0].id: ("finished", "unbound"),
        jobs[1].id: ("failed", "unbound"),
        jobs[2].id: ("preempted", "unbound"),
        jobs[3].id: ("running", "unbound"),
        jobs[4].id: ("removed", "unbound"),
        jobs[5].id: ("stale", "unbound"),
        new: ("created", None),
    }
    flashed = next(c for c in changes["changes"] if c["job_id"] == jobs[5].id)["job"]
    assert (flashed["state"], flashed["stale"], flashed["attempts"]) == ("running", True, 1)
    assert "tracker" not in jobs[5].document
    error = next(c for c in changes["changes"] if c["job_id"] == jobs[1].id)["job"]["error"]
    assert error.startswith("RuntimeError: failure ")
    # The attempt is killed: no write anywhere, and the next poll says it went stale.
    cursor = changes["cursor"]
    sweep.kill(jobs[3].id)
    changes = changes_document(project.path, cursor)
    assert [(c["job_id"], c["change"], c["was"]) for c in changes["changes"]] == [
        (jobs[3].id, "stale", "running")
    ]
    assert changes["read"] == 1  # the running job alone: nothing else changed
    quiet = changes_document(project.path, changes["cursor"])
    assert quiet["changes"] == [] and quiet["read"] == 0
    # A preempted job's next attempt, killed in its first second: its journal alone says so.
    sweep.flash(jobs[2])
    time.sleep(0.05)
    changes = changes_document(project.path, quiet["cursor"])
    assert [(c["job_id"], c["change"], c["was"]) for c in changes["changes"]] == [
        (jobs[2].id, "stale", "preempted")
    ]
    assert changes["changes"][0]["job"]["attempts"] == 2
    assert jobs[2].document["tracker"]["state"] == "preempted"  # the document knows nothing
    # An old cursor still answers (cursors last an hour); a made-up one does not.
    assert changes_document(project.path, cursor)["changes"]
    for bad in ("c1-ffffffffffffffff", "c1-../../x", "", "c2-0000000000000000"):
        with pytest.raises(CursorError, match="aexp status --json"):
            changes_document(project.path, bad)


def test_since_with_real_runs_finishing_failing_and_killed(tmp_path: Path) -> None:
    """The template's experiment through `python project.py run`; one run's process killed."""
    root = copy_template(tmp_path / "project")
    set_rc(root, "tracker", "backend", "noop")
    set_rc(root, "workflow", "heartbeat_interval", "1")

    def aexp(*args: str) -> str:
        return run_cmd([PYTHON, "-m", "aexp.cli", *args], root, check=True).stdout

    def status(*args: str) -> dict[str, Any]:
        doc = json.loads(aexp("status", "--json", *args))
        check(doc)
        return doc

    new = ["new-run", "--experiment", "E1", "--hypothesis", "H1", "--sp"]
    quick = aexp(*new, "seed=0..2,epochs=2").split()
    failing = aexp(*new, "seed=5,epochs=3,fail_at_epoch=1").split()
    slow = aexp(*new, "seed=9,epochs=200,epoch_seconds=0.2").split()
    first = status()
    model, cursor = _view(first["jobs"]), first["cursor"]
    assert run_cmd([PYTHON, "project.py", "run", "-j", *quick, *failing], root).returncode == 1
    runner = subprocess.Popen(
        [PYTHON, "project.py", "run", "-j", *slow],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        kinds: dict[str, str] = {}
        while kinds.get(slow[0]) != "running":
            assert time.monotonic() < deadline, kinds
            time.sleep(0.2)
            changes = status("--since", cursor)
            _apply(model, changes)
            kinds.update((c["job_id"], c["change"]) for c in changes["changes"])
            cursor = changes["cursor"]
        os.killpg(runner.pid, signal.SIGKILL)  # the whole pass, mid-epoch
        runner.wait()
        changes = status("--since", cursor)
        _apply(model, changes)
        kinds.update((c["job_id"], c["change"]) for c in changes["changes"])
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert kinds == {**dict.fromkeys(quick, "finished"), failing[0]: "failed", slow[0]: "stale"}
    assert model == _view(status()["jobs"])
