"""Sweeps at cluster scale on the real SLURM cluster (scripts/slurm_cluster.sh starts one): a
canary gates the sweep, queue limits are respected and reported, sbatch refusing part-way is
reported as it happened, a hung job is labelled stalled by `status` on the login node and, with
`on_stall = preempt`, preempted and resumed from its checkpoint, and each attempt's peak memory
is recorded.

The cluster is shared: each test knows its own SLURM jobs by the names (and ids) its submit
printed (tests/slurm_cluster.py). Jobs use the noop backend; they take seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc
from slurm_cluster import Cluster, cluster_of, doc, events, logged, noop, sweep

from aexp.slurm.commands import config

pytestmark = pytest.mark.slurm

# An experiment with a bug that the canary catches: it fails while <project>/BUG exists.
BUGGY = """\
import os
import time


def experiment(job, tracker):
    root = os.path.dirname(os.path.dirname(job.path))
    if os.path.exists(os.path.join(root, "BUG")):
        raise RuntimeError("the bug the canary catches")
    for step in range(3):
        tracker.log({"x": step}, step=step)
        time.sleep(0.2)
"""

# An experiment holding a known amount of memory: `alloc_mb` in its own process, `child_mb` in
# a child process, for a second.
ALLOCATING = """\
import subprocess
import sys
import time


def experiment(job, tracker):
    held = bytearray(b"1") * (int(job.sp.get("alloc_mb", 0)) * 2**20)  # written: resident
    child = int(job.sp.get("child_mb", 0))
    if child:
        code = f"b = bytearray(b'1') * ({child} * 2**20); import time; time.sleep(0.5)"
        subprocess.run([sys.executable, "-c", code], check=True)
    tracker.log({"held_mb": len(held) / 2**20}, step=0)
    time.sleep(1)
"""


@pytest.fixture
def cluster(slurm, template: Path) -> Iterator[Cluster]:
    yield from cluster_of(template)


def wait_for(what: str, check, cluster: Cluster, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s; queue {cluster.reasons()}\n{cluster.logs()}")


def finishes(job) -> list[dict]:
    return [e for e in events(job) if e["event"] == "finish"]


# -- a canary that fails holds the rest; a new one that succeeds releases them ------------------
def test_a_failed_canary_holds_the_rest_and_status_names_it_until_a_new_canary_succeeds(
    cluster: Cluster,
) -> None:
    noop(cluster)
    (cluster.root / "experiment.py").write_text(BUGGY)
    (cluster.root / "BUG").touch()
    jobs = {job.id: job for job in sweep(4)}
    cluster.submit("--canary")
    sent = cluster.sent()
    assert [canary for *_, canary in sent] == [True, False, False, False], cluster.said
    (canary_job, canary_id, _), rest = sent[0], sent[1:]
    assert "the other 3 start only once it succeeds (--dependency=afterok)" in cluster.said
    held = {slurm_id for _, slurm_id, _ in rest}

    def all_held() -> bool:
        reasons = cluster.reasons()
        return set(reasons) == held and all(
            why == "DependencyNeverSatisfied" for _, why in reasons.values()
        )

    wait_for("the rest held behind the failed canary", all_held, cluster)
    assert doc(jobs[canary_job])["tracker"]["state"] == "failed"
    time.sleep(3)  # held for good: nothing of theirs ever starts
    assert all_held()
    for job_id, _, _ in rest:
        assert "tracker" not in doc(jobs[job_id]), "a held job never started"
        assert not Path(jobs[job_id].path, "tracker_log").exists()
    status = cluster.flow("status").stdout
    assert (
        f"held: 3 SLURM jobs of this sweep will never start: their canary job {canary_job} "
        f"(failed), SLURM job {canary_id}, did not succeed" in status
    ), status
    assert "python project.py submit --canary` puts them behind a new canary" in status
    again = cluster.flow("submit")
    assert "Submitting cluster job" not in again.stderr, "held jobs are never sent twice"
    assert "3 SLURM job(s) stay held behind a failed canary" in again.stderr
    assert all_held(), "a plain submit does not let them loose"

    # The fix: the bug goes, the canary's run is re-armed; the next canary releases the rest.
    (cluster.root / "BUG").unlink()
    run_cmd([str(Path(PYTHON).parent / "aexp"), "rearm", canary_job], cwd=cluster.root, check=True)
    cluster.submit("--canary")
    ((new_job, new_id, is_canary),) = cluster.sent()
    assert new_job == canary_job and is_canary
    assert "3 held SLURM job(s) now wait for the new canary" in cluster.said
    cluster.wait_until_drained(timeout=150)
    for job in jobs.values():
        assert doc(job)["tracker"]["state"] == "finished", cluster.logs()
    for slurm_id in held:  # the same SLURM jobs ran: released, not resubmitted
        assert cluster.show(slurm_id)["JobState"] == "COMPLETED"
        assert cluster.show(slurm_id)["StartTime"] >= cluster.show(new_id)["EndTime"]


# -- a canary that succeeds releases the rest; peak memory of each attempt ----------------------
def test_a_canary_that_succeeds_releases_the_rest_and_each_attempt_records_its_peak_memory(
    cluster: Cluster,
) -> None:
    noop(cluster)
    (cluster.root / "experiment.py").write_text(ALLOCATING)
    plain, holding, parent = sweep(1, alloc_mb=0), sweep(1, alloc_mb=300), sweep(1, child_mb=200)
    jobs = {job.id: job for job in (*plain, *holding, *parent)}
    cluster.submit("--canary")
    sent = cluster.sent()
    assert [canary for *_, canary in sent] == [True, False, False], cluster.said
    cluster.wait_until_drained(timeout=120)
    canary_end = cluster.show(sent[0][1])["EndTime"]
    for _, slurm_id, _ in sent[1:]:
        info = cluster.show(slurm_id)
        assert info["JobState"] == "COMPLETED" and info["StartTime"] >= canary_end, info
    for job in jobs.values():
        assert doc(job)["tracker"]["state"] == "finished", cluster.logs()

    peak = {job_id: finishes(job)[-1]["peak_rss_mb"] for job_id, job in jobs.items()}
    assert all(finishes(job)[-1]["wall_s"] >= 1.0 for job in jobs.values())
    base = peak[plain[0].id]
    assert 290 <= peak[holding[0].id] - base <= 330, peak  # 300 MiB held by the process
    # The child's own peak (200 MiB and its interpreter) counts: the process tree's.
    assert 200 <= peak[parent[0].id] - base <= 250, peak
    assert doc(holding[0])["peak_rss_mb"] == peak[holding[0].id]
    print(f"peak memory (MiB): plain {base}, +300 MiB held {peak[holding[0].id]}, "
          f"+200 MiB child {peak[parent[0].id]}")  # fmt: skip

    found = run_cmd([str(Path(PYTHON).parent / "aexp"), "resources", "--json"], cwd=cluster.root)
    (sized,) = json.loads(found.stdout)["operations"]
    assert sized["memory_runs"] == sized["wall_runs"] == 3
    assert sized["memory_quantile_mb"] == max(peak.values())


# -- queue limits -------------------------------------------------------------------------------
def test_submit_sends_no_more_than_the_limit_leaves_and_says_what_waits(cluster: Cluster) -> None:
    noop(cluster)
    jobs = sweep(5)
    mine = int(subprocess.run(["squeue", "-h", "-u", "root", "-o", "%i"], capture_output=True,
                              text=True, timeout=30).stdout.count("\n"))  # fmt: skip
    set_rc(cluster.root, "slurm", "max_submit", str(mine + 2))
    total = 0
    for _ in range(6):  # pass after pass, each sends what the limit leaves
        names = cluster.submit(check=False)
        match = re.search(r"max_submit=(\d+) \(\[slurm\] max_submit in signac\.rc\): "
                          r"(\d+) counted, (\d+) free", cluster.said)  # fmt: skip
        sent = len(names)
        total += sent
        if total < len(jobs):
            assert match, cluster.said
            free = int(match.group(3))
            assert sent == free <= 2, cluster.said
            assert f"{len(jobs) - total} wait for the next submit" in cluster.said
        record = json.loads((cluster.root / "logs" / "submit.jsonl").read_text().splitlines()[-1])
        assert record["submitted"] == sent and record["waiting"] == len(jobs) - total
        assert f"MaxJobCount={config()['MaxJobCount']} (scontrol show config)" in record["limits"]
        if total == len(jobs):
            break
        cluster.wait_until_drained(timeout=90)
    assert total == len(jobs)
    cluster.wait_until_drained(timeout=90)
    assert all(doc(job)["tracker"]["state"] == "finished" for job in jobs), cluster.logs()


def test_a_submission_sbatch_refuses_part_way_is_reported_as_it_happened(cluster: Cluster) -> None:
    noop(cluster)
    project = cluster.root / "project.py"
    project.write_text(project.read_text().replace(
        '"np": 1, "walltime": 1}', '"np": 1, "walltime": 1, "memory": lambda job: '
        'job.doc.get("memory_gb")}'))  # fmt: skip
    jobs = {job.id: job for job in sweep(3)}
    order = re.findall(r"Group: run_job\((\w+)\)", cluster.flow("submit", "--pretend").stderr)
    jobs[order[1]].doc["memory_gb"] = 10**6  # more than any node has: sbatch refuses it
    result = cluster.flow("submit", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (first,) = re.findall(r"Submitting cluster job '([^']+)'", result.stderr)
    cluster.names.append(first)
    first_id = re.search(r" - SLURM job (\d+)", result.stderr).group(1)
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: sbatch refused run_job({order[1]}) (Requested node configuration is not "
        f"available); the 1 submitted before it stay queued (SLURM jobs {first_id}); 2 eligible "
        "jobs were not sent: the next submit sends them."
    )
    assert cluster.show(first_id)["JobName"] == first
    record = json.loads((cluster.root / "logs" / "submit.jsonl").read_text().splitlines()[-1])
    assert [s["slurm_id"] for s in record["sent"]] == [first_id]
    assert record["refused"]["ops"] == [f"run_job({order[1]})"] and record["not_sent"] == 2
    pending = cluster.flow("submit", "--pretend").stderr
    assert f"run_job({order[1]})" in pending and f"run_job({order[2]})" in pending
    # flow's own `--after ID` would be `sbatch -W` (a wait): here it is a dependency.
    after = cluster.flow("submit", "--pretend", "--after", first_id).stdout
    assert set(re.findall(r"^# Submit command: (.*)$", after, re.M)) == {
        f"sbatch --dependency=afterok:{first_id} --kill-on-invalid-dep=no"
    }


# -- a hung job: stalled, preempted, resumed from its checkpoint ---------------------------------
def test_status_on_the_login_node_labels_a_hung_slurm_job_stalled_within_its_bound(
    cluster: Cluster,
) -> None:
    noop(cluster)
    set_rc(cluster.root, "workflow", "stall_after", "3")  # on_stall = report: a label alone
    (job,) = sweep(1, epochs=4, epoch_seconds=0.2, hang_at_epoch=2)
    (name,) = cluster.submit()
    slurm_id = cluster.slurm_id(name)
    deadline, row = time.monotonic() + 60, ""
    while "stalled" not in row:
        if time.monotonic() > deadline:
            pytest.fail(f"never labelled stalled:\n{row}\n{cluster.logs()}")
        status = cluster.flow("status", "-d").stdout
        row = next((x for x in status.splitlines() if x.startswith(job.id)), "")
        time.sleep(0.3)
    rows = [e for e in events(job) if e["event"] == "log"]
    silent = time.time() - _seconds(rows[-1]["timestamp"])
    print(f"status labelled it stalled {silent:.1f} s after its last row (bound 3 s)")
    assert [r["step"] for r in rows] == [0, 1], "it hung at epoch 2"
    assert 3 <= silent <= 3 + 8, silent  # the bound, then the poll and two status calls at most
    assert "running" in row and "[A]" in row and "stale," not in row, row
    assert cluster.show(slurm_id)["JobState"] == "RUNNING"
    runs = run_cmd([str(Path(PYTHON).parent / "aexp"), "runs", "--json"], cwd=cluster.root)
    (seen,) = json.loads(runs.stdout)["jobs"]
    assert seen["state"] == "running" and seen["stalled"] is True
    subprocess.run(["scancel", slurm_id], check=True, timeout=30)
    cluster.wait_until_drained(timeout=60)


def test_a_hung_job_is_preempted_as_stalled_and_resumes_from_its_checkpoint(
    cluster: Cluster,
) -> None:
    noop(cluster)
    set_rc(cluster.root, "workflow", "stall_after", "5")
    set_rc(cluster.root, "workflow", "on_stall", "preempt")
    epochs = 6
    (job,) = sweep(1, epochs=epochs, epoch_seconds=0.3, hang_at_epoch=3)
    (name,) = cluster.submit()
    slurm_id = cluster.slurm_id(name)
    cluster.wait_until_drained(timeout=150)

    binding = doc(job)["tracker"]
    assert binding["state"] == "finished" and binding["attempts"] == 2, cluster.logs()
    first, second = finishes(job)
    assert first["preempted"] and first["stalled"] and first["exit_code"] == 138, first
    assert second["exit_code"] == 0 and "stalled" not in second
    assert logged(job) == list(range(epochs)), "one continuous step axis"
    assert logged(job, "epoch") == list(range(epochs)), "resumed at its checkpoint (epoch 3)"
    rows = [e for e in events(job) if e["event"] == "log"]
    silence = _seconds(first["timestamp"]) - _seconds(rows[2]["timestamp"])
    print(f"hung after epoch 2; preempted {silence:.1f} s after its last row (bound 5 s)")
    assert 5 <= silence <= 5 + 1 + 6, silence  # the bound, a heartbeat, the signal's way
    assert cluster.show(slurm_id)["Restarts"] == "1"
    out = cluster.log_text(slurm_id)
    assert "stalled: its journal logged nothing for" in out and "requeueing job" in out


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
