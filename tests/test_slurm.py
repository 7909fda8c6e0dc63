"""`python project.py submit` on a real SLURM cluster (scripts/slurm_cluster.sh starts one).

Every test submits through flow's DefaultSlurmEnvironment from a copy of the template in the
test's temp dir (the compute node is this machine, so it sees the same files), waits for the
queue to drain with a bounded wait, and checks the job documents, the tracker's records, SLURM's
own view (`scontrol show job`) and the batch output in logs/. On failure the batch output is
printed. Most tests use the noop backend (fast); the first and the last run W&B offline.

Timing on this cluster (scripts/slurm_cluster.sh): time limits and warning signals are checked
about every 30 s, so the warning arrives between warning_seconds and warning_seconds + 30 s
before the limit; a requeued job starts again about 13-26 s after its requeue.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc
from slurm_cluster import Cluster, cluster_of, doc, events, logged, noop, stamp, sweep, wait_running

from aexp.checkpoint import read_checkpoint
from aexp.trackers.noop import LOG_DIR

pytestmark = pytest.mark.slurm


@pytest.fixture
def cluster(slurm, template: Path) -> Iterator[Cluster]:
    yield from cluster_of(template)


# -- (1) a sweep ---------------------------------------------------------------------------------
def test_a_submitted_wandb_sweep_finishes_every_job_with_its_offline_run(cluster: Cluster) -> None:
    pytest.importorskip("wandb")
    jobs = sweep(3, epochs=3)
    names = cluster.submit()
    assert len(names) == 3 and all(any(job.id in n for n in names) for job in jobs)
    cluster.wait_until_drained(timeout=180)

    for job in jobs:
        binding = doc(job)["tracker"]
        assert binding["backend"] == "wandb" and binding["offline"] is True
        assert binding["state"] == "finished" and binding["exit_code"] == 0, cluster.logs()
        assert binding["closed"] is True and binding["attempts"] == 1
        (folder,) = Path(job.path, "wandb").glob("offline-run-*")
        assert folder.name.endswith("-" + binding["run_id"])
        assert (folder / f"run-{binding['run_id']}.wandb").stat().st_size > 0
    outputs = sorted(cluster.root.glob("logs/slurm-*.out"))
    assert len(outputs) == 3
    for path in outputs:
        assert "exited with 0" in path.read_text()
        assert cluster.show(path.stem.split("-")[1]).get("JobState") == "COMPLETED"

    status = cluster.flow("status", "-d").stdout
    assert status.count("finished") >= 3 and "unsynced" in status
    again = cluster.flow("submit")
    assert "Submitting cluster job" not in again.stderr, "finished jobs are not resubmitted"


# -- (2) scancel -----------------------------------------------------------------------------------
def test_scancel_records_the_run_preempted_keeps_its_data_and_does_not_requeue(
    cluster: Cluster,
) -> None:
    noop(cluster)
    (job,) = sweep(1, epochs=60, epoch_seconds=1)
    (name,) = cluster.submit()
    slurm_id = cluster.slurm_id(name)
    wait_running(cluster, [job], min_step=2)
    subprocess.run(["scancel", slurm_id], check=True, timeout=30)
    cluster.wait_until_drained(timeout=60)

    binding = doc(job)["tracker"]
    assert binding["state"] == "preempted" and binding["exit_code"] == 143, cluster.logs()
    assert binding["closed"] is True and binding["attempts"] == 1
    steps = logged(job)
    assert len(steps) >= 3 and steps == list(range(len(steps))), "data so far is kept"
    assert events(job)[-1] == {**events(job)[-1], "event": "finish", "exit_code": 143,
                               "preempted": True}  # fmt: skip
    checkpoint = read_checkpoint(job.path)
    assert checkpoint.state["epoch"] >= len(steps) - 1

    out = cluster.log_text(slurm_id)
    assert "SIGTERM received" in out and "exited with 143" in out and "requeue" not in out
    time.sleep(2)
    info = cluster.show(slurm_id)
    assert info["JobState"] == "CANCELLED" and info["Restarts"] == "0"
    assert not cluster.queue(), "scancel is final: not requeued"

    # Nothing requeues it, but its post-conditions do not hold: the next submit sends it again.
    again = cluster.flow("submit", "--pretend")
    assert f"run_job({job.id})" in again.stderr


# -- (3) the time limit --------------------------------------------------------------------------
def test_a_job_hitting_its_time_limit_is_requeued_and_resumes_the_same_run(
    cluster: Cluster,
) -> None:
    """--time=2 with the warning 60 s ahead: the signal comes 60-90 s before the limit."""
    noop(cluster)
    set_rc(cluster.root, "slurm", "warning_seconds", "60")
    epochs = 35
    (job,) = sweep(1, epochs=epochs, epoch_seconds=2)  # 70 s of work, more than one attempt
    (name,) = cluster.submit("--", "--time=2")
    slurm_id = cluster.slurm_id(name)
    wait_running(cluster, [job], min_step=0)
    run_id = doc(job)["tracker"]["run_id"]
    waited = cluster.wait_until_drained(timeout=360)

    info = cluster.show(slurm_id)
    restarts = int(info["Restarts"])
    assert info["JobState"] == "COMPLETED" and restarts >= 1, (info, cluster.logs())
    binding = doc(job)["tracker"]
    assert binding["run_id"] == run_id and binding["state"] == "finished", cluster.logs()
    assert binding["attempts"] == restarts + 1
    assert len(list(Path(job.path, LOG_DIR).iterdir())) == 1, "one run, not one per attempt"
    assert logged(job) == list(range(epochs)), "one continuous step axis"
    assert logged(job, "epoch") == list(range(epochs)), "each attempt resumed at its checkpoint"
    finishes = [e for e in events(job) if e["event"] == "finish"]
    assert [e["exit_code"] for e in finishes] == [138] * restarts + [0]  # 128 + SIGUSR1
    assert all(e["preempted"] for e in finishes[:-1])

    # The batch output (appended across attempts): when the signal came, when the job restarted.
    lines = cluster.log_text(slurm_id).splitlines()
    starts = [stamp(x) for x in lines if re.match(r"aexp: .* job \d+ on .*, restart \d+$", x)]
    signals = [stamp(x) for x in lines if "SIGUSR1 received" in x]
    requeues = [stamp(x) for x in lines if "requeueing job" in x]
    assert len(starts) == restarts + 1 and len(signals) == len(requeues) == restarts
    leads = [
        (start - sig).total_seconds() + 120 for start, sig in zip(starts[:-1], signals, strict=True)
    ]
    delays = [
        (start - req).total_seconds() for req, start in zip(requeues, starts[1:], strict=True)
    ]
    print(f"warning lead times {leads} s, requeue delays {delays} s, total {waited:.0f} s")
    assert all(55 <= lead < 120 for lead in leads), leads


# -- (4) status while jobs are in flight ---------------------------------------------------------
def test_status_shows_queued_running_and_finished_jobs(cluster: Cluster) -> None:
    noop(cluster)
    jobs = sweep(3, epochs=8, epoch_seconds=1)  # 2 cores, 1 each: one job waits in the queue
    cluster.submit()
    seen: dict[str, set[str]] = {job.id: set() for job in jobs}
    resubmitted = None
    deadline = time.monotonic() + 120
    while cluster.queue() and time.monotonic() < deadline:
        status = cluster.flow("status", "-d").stdout
        for job in jobs:
            row = next((x for x in status.splitlines() if x.startswith(job.id)), "")
            if "run_job (3 ops) [Q]" in row:
                seen[job.id].add("queued")
            if "run_job (3 ops) [A]" in row and "running" in row:
                seen[job.id].add("running")
        if resubmitted is None:
            resubmitted = cluster.flow("submit").stderr
    cluster.wait_until_drained(timeout=60)

    assert any("queued" in s for s in seen.values()), seen
    assert any("running" in s for s in seen.values()), seen
    assert "Submitting cluster job" not in resubmitted, "jobs in the queue are not sent twice"
    status = cluster.flow("status", "-d").stdout
    for job in jobs:
        row = next(x for x in status.splitlines() if x.startswith(job.id))
        assert "finished" in row and "[Q]" not in row and "[A]" not in row, status


# -- (5) a bundle, W&B -----------------------------------------------------------------------
def test_a_parallel_bundle_forwards_the_warning_to_every_operation(cluster: Cluster) -> None:
    """The warning sent to the batch shell alone (as --signal=B: does, here via scancel -b)."""
    pytest.importorskip("wandb")
    from aexp.wandb_offline import find_fragments, read_fragment

    jobs = sweep(2, epochs=16, epoch_seconds=1)
    (name,) = cluster.submit("--bundle", "2", "--parallel")
    slurm_id = cluster.slurm_id(name)
    wait_running(cluster, jobs, min_step=2)
    run_ids = [doc(job)["tracker"]["run_id"] for job in jobs]
    subprocess.run(["scancel", "--batch", "--signal=USR1", slurm_id], check=True, timeout=30)
    cluster.wait_until_drained(timeout=120)

    out = cluster.log_text(slurm_id)
    assert re.search(r"SIGUSR1 received; forwarding it to: \d+ \d+$", out, re.M), out
    assert out.count("exited with 138") == 2 and "restart 1" in out
    assert cluster.show(slurm_id)["Restarts"] == "1"
    for job, run_id in zip(jobs, run_ids, strict=True):
        binding = doc(job)["tracker"]
        assert binding["state"] == "finished" and binding["run_id"] == run_id
        assert binding["attempts"] == 2 and binding["last_step"] == 15
        first, second = (read_fragment(f) for f in find_fragments(job.path))
        assert first.run_id == second.run_id == run_id, "one W&B run, one fragment per attempt"
        assert first.state == "preempted" and first.exit_code == 138
        assert second.state == "finished" and second.exit_code == 0
        assert first.first_step == 0 and second.first_step == first.last_step + 1
        assert second.last_step == 15


# -- (6) a walltime that leaves no working window (issue 12) -------------------------------------
def test_submit_refuses_a_walltime_shorter_than_the_warning_and_queues_nothing(
    cluster: Cluster,
) -> None:
    """72 s of walltime against a warning 120 s before the end: SLURM would take it and signal
    it at once, over and over; `submit` refuses in one line and nothing reaches the queue."""
    noop(cluster)
    jobs = sweep(2)
    for args in (["--pretend", "--", "--time=0:01:12"], ["--", "--time=0:01:12"]):
        result = cluster.flow("submit", *args, check=False)
        # refused before anything was sent: a usage or settings error (exit 2, docs/workflow.md)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        said = [x for x in result.stderr.splitlines() if x and x != "Querying scheduler..."]
        assert len(said) == 1 and said[0].startswith("error: submit refused: run_job("), said
        assert "walltime of 0:01:12 (72 s), but SIGUSR1 comes 120 s before the end" in said[0]
        assert "Submitting cluster job" not in result.stderr and result.stdout == ""
    assert not cluster.queue()
    assert not list(cluster.root.glob("logs/*"))
    assert all("tracker" not in doc(job) for job in jobs), "nothing ran"
    # With room to work (3 minutes: 60 s before the warning) the same jobs go to the queue.
    names = cluster.submit("--", "--time=3")
    assert len(names) == 2
    cluster.wait_until_drained(timeout=180)
    assert all(doc(job)["tracker"]["state"] == "finished" for job in jobs), cluster.logs()


# -- (8) an agent's submission stays within [agent]'s budget ------------------------------------
def test_an_agents_submission_stays_within_its_budget(cluster: Cluster) -> None:
    """execute asks for 1 CPU for 1 hour: with cpu_hours_per_day = 1.5, an agent (its session
    variable set) may submit one job, not two; a person is not bound by [agent]."""
    noop(cluster)
    set_rc(cluster.root, "agent", "cpu_hours_per_day", "1.5")
    jobs = sweep(2)
    agent = {**cluster.env, "CLAUDE_CODE_SESSION_ID": "sess-budget"}
    refused = run_cmd([PYTHON, "project.py", "submit"], cluster.root, env=agent, timeout=120)
    said = [x for x in refused.stderr.splitlines() if x and x != "Querying scheduler..."]
    assert refused.returncode == 2 and len(said) == 1, refused.stderr  # nothing was sent
    assert said[0] == (
        "error: refused: this submission would use 2 CPU-hours and agents launched 0 in the "
        "last 24 hours, past [agent] cpu_hours_per_day = 1.5; start fewer jobs, shorten their "
        "walltime directive, or wait."
    )
    assert not cluster.queue() and "Submitting cluster job" not in refused.stderr
    one = run_cmd([PYTHON, "project.py", "submit", "-j", jobs[0].id], cluster.root, env=agent)
    names = re.findall(r"Submitting cluster job '([^']+)'", one.stderr)
    assert one.returncode == 0 and len(names) == 1, one.stderr
    cluster.names += names
    log = [
        json.loads(line) for line in (cluster.root / ".aexp/actions.jsonl").read_text().splitlines()
    ]
    assert [(e["action"], e["jobs"], e["cost"]["cpu_hours"]) for e in log] == [
        ("submit", [jobs[0].id], 1.0)
    ]
    assert log[0]["actor"]["session_id"] == "sess-budget"
    again = run_cmd([PYTHON, "project.py", "submit", "-j", jobs[1].id], cluster.root, env=agent)
    assert again.returncode == 2 and "agents launched 1 in the last 24 hours" in again.stderr
    cluster.submit("-j", jobs[1].id)  # a person: not bound by [agent]
    cluster.wait_until_drained(timeout=180)
    assert all(doc(job)["tracker"]["state"] == "finished" for job in jobs), cluster.logs()
    launch = doc(jobs[0])["actor"]["launch"]
    assert (launch["kind"], launch["session_id"], launch["tool"]) == (
        "agent", "sess-budget", "python project.py submit"
    )  # fmt: skip
