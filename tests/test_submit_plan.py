"""The pieces of a SLURM `submit` pass that are pure functions: the plan (canary first, the
limits), the limits read from SLURM's accounting, the canary's record and what `status` says of
the jobs held behind it. The pass itself runs on the real cluster in tests/test_slurm_scale.py.

sacctmgr needs SLURM's accounting daemon (slurmdbd), which the test cluster does not run: the
limits' reading is given sacctmgr's rows (its `-nP` output, split) by a stand-in function.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc

from aexp import create_run
from aexp.slurm import canary
from aexp.slurm.commands import QueueRow, last_line
from aexp.slurm.limits import Limit, Limits, accounting_limits, qos_flag
from aexp.slurm.plan import plan_submission


def _shape(plan) -> list[tuple[int, bool]]:
    return [(len(bundle.ops), bundle.canary) for bundle in plan.send]


@pytest.mark.parametrize(
    ("n", "bundle", "canary_n", "free", "over", "sent", "waiting"),
    [
        (5, 1, 0, None, "wait", [(1, False)] * 5, 0),
        (5, 1, 1, None, "wait", [(1, True)] + [(1, False)] * 4, 0),
        (5, 2, 3, None, "wait", [(2, True), (1, True), (2, False)], 0),  # never mixed
        (5, 1, 1, 3, "wait", [(1, True), (1, False), (1, False)], 2),
        (5, 1, 0, 0, "wait", [], 5),
        (5, 1, 2, 1, "wait", [], 5),  # no room for the whole canary: nothing goes
        (7, 1, 1, 3, "bundle", [(1, True), (3, False), (3, False)], 0),
        (7, 1, 1, 1, "bundle", [(1, True)], 6),  # only the canary fits
        (4, 2, 0, 5, "wait", [(2, False), (2, False)], 0),
    ],
)
def test_the_plan_sends_the_canary_first_and_no_more_than_the_limit_leaves(
    n, bundle, canary_n, free, over, sent, waiting
) -> None:
    ops = [f"op{i}" for i in range(n)]
    plan = plan_submission(ops, bundle=bundle, canary=canary_n, free=free, over_limit=over)
    assert _shape(plan) == sent
    assert len(plan.waiting) == waiting
    assert [op for b in plan.send for op in b.ops] + list(plan.waiting) == ops, "order kept"
    assert plan.sent_ops + len(plan.waiting) == n


def test_the_limits_are_read_from_the_association_and_the_qos() -> None:
    asked = []

    def sacctmgr(*args: str) -> list[dict[str, str]]:
        asked.append(args)
        if args[0] == "assoc":
            return [{"cluster": "ci", "account": "lab", "user": "me", "partition": "",
                     "maxsubmit": "40", "defaultqos": "normal"}]  # fmt: skip
        return [{"name": args[1].split("=")[1], "maxsubmitpu": "25"}]

    found = accounting_limits("me", None, 10, sacctmgr)
    assert found == [
        Limit("MaxSubmitJobs", 40, "association ci/lab", 10),
        Limit("MaxSubmitPU", 25, "QOS normal", 10),
    ]
    assert asked[1][1] == "where name=normal", "the association's default QOS"
    accounting_limits("me", "long", 10, sacctmgr)
    assert asked[3][1] == "where name=long", "--qos after -- wins"
    limits = Limits((*found, Limit("max_submit", 12, "signac.rc", 10)))
    assert limits.free == 2 and limits.tightest.name == "max_submit"
    assert Limits().free is None and Limits().describe() == "no queue limit known"


def test_an_unlimited_association_and_qos_give_no_limit() -> None:
    def sacctmgr(*args: str) -> list[dict[str, str]]:
        if args[0] == "assoc":
            return [{"maxsubmit": "", "defaultqos": ""}]
        return [{"name": "normal", "maxsubmitpu": ""}]

    assert accounting_limits("me", None, 3, sacctmgr) == []


@pytest.mark.parametrize(
    ("flags", "qos"),
    [([], None), (["--qos=long"], "long"), (["--qos", "debug"], "debug"), (["-qhigh"], "high"),
     (["-q", "a", "--qos=b"], "b")],
)  # fmt: skip
def test_the_qos_flag(flags, qos) -> None:
    assert qos_flag(flags) == qos


def test_sbatch_reasons_lose_their_prefixes() -> None:
    said = "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job " \
        "submission failed: Requested node configuration is not available\n"  # fmt: skip
    assert last_line(said) == "Requested node configuration is not available"
    assert last_line("") == "no reason given"


@pytest.mark.parametrize(
    ("dependency", "ids"),
    [("afterok:131(failed)", ["131"]), ("afterok:131:132", ["131", "132"]),
     ("afterok:131(failed),afterok:132(unfulfilled)", ["131", "132"]), ("", []),
     ("afterok:140_*(unfulfilled)", ["140"])],
)  # fmt: skip
def test_the_canaries_a_dependency_names(dependency, ids) -> None:
    assert canary.depends_on(dependency) == ids


def _row(job_id: str, reason: str, dependency: str, state: str = "PENDING") -> QueueRow:
    return QueueRow(job_id, state, reason, dependency, f"Project/{job_id}", "me")


def test_status_names_the_failed_canary_of_held_jobs_and_the_one_others_wait_for(tmp_path) -> None:
    canary.remember(tmp_path, [("131", "Project/a", ["a" * 32])], "2026-01-01T00:00:00+00:00")
    canary.remember(tmp_path, [("140", "Project/b", ["b" * 32])], "2026-01-01T00:01:00+00:00")
    rows = [
        _row("132", "DependencyNeverSatisfied", "afterok:131(failed)"),
        _row("133", "DependencyNeverSatisfied", "afterok:131(failed)"),
        _row("141", "Dependency", "afterok:140(unfulfilled)"),
        _row("150", "DependencyNeverSatisfied", "afterok:99(failed)"),  # another project's
        _row("160", "None", "", state="RUNNING"),
    ]
    lines = canary.status_lines(
        tmp_path, rows, lambda job: {"a" * 32: "failed"}.get(job, "running")
    )
    assert len(lines) == 2
    assert lines[0].startswith(
        f"held: 2 SLURM jobs of this sweep will never start: their canary job {'a' * 32} "
        "(failed), SLURM job 131, did not succeed"
    )
    assert "scancel 132 133 drops them." in lines[0]
    assert lines[1] == (
        f"gated: 1 SLURM job of this sweep waits for their canary job {'b' * 32} (running), "
        "SLURM job 140, to succeed."
    )
    assert canary.held(tmp_path, rows) == ["132", "133"]
    assert canary.status_lines(tmp_path / "elsewhere", rows, str) == [], "no record: nothing"


# -- what --pretend shows, without a scheduler -------------------------------------------------
def test_submit_pretend_shows_the_canary_first_and_the_rest_behind_it(template: Path) -> None:
    set_rc(template, "tracker", "backend", "noop")
    jobs = [
        create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"seed": seed})
        for seed in range(3)
    ]
    shown = run_cmd([PYTHON, "project.py", "submit", "--pretend", "--canary"], cwd=template)
    assert shown.returncode == 0, shown.stderr
    commands = re.findall(r"^# Submit command: (.*)$", shown.stdout, re.M)
    assert commands == ["sbatch"] + ["sbatch --dependency=afterok:<canary 1> "
                                     "--kill-on-invalid-dep=no"] * 2  # fmt: skip
    groups = re.findall(r"Group: run_job\((\w+)\)", shown.stderr)
    assert sorted(groups) == sorted(job.id for job in jobs)
    assert shown.stderr.strip().splitlines()[-1] == (
        "submit --pretend: 3 of 3 eligible would be sent as 3 SLURM jobs, 1 of them the canary; "
        "nothing was submitted."
    )
    for bad in ("0", "x"):
        refused = run_cmd([PYTHON, "project.py", "submit", "--canary", bad], cwd=template)
        assert refused.returncode == 2 and "--canary: must be" in refused.stderr


# -- `run --canary`: the local counterpart ------------------------------------------------------
BUGGY = """\
import os


def experiment(job, tracker):
    if os.path.exists(os.path.join(os.path.dirname(os.path.dirname(job.path)), "BUG")):
        raise RuntimeError("the bug the canary catches")
    tracker.log({"x": 1.0}, step=0)
"""


def test_run_canary_stops_at_the_failed_canary_and_runs_everything_once_it_succeeds(
    template: Path,
) -> None:
    set_rc(template, "tracker", "backend", "noop")
    (template / "experiment.py").write_text(BUGGY)
    (template / "BUG").touch()
    jobs = [
        create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"seed": seed})
        for seed in range(4)
    ]
    failed = run_cmd([PYTHON, "project.py", "run", "--canary"], cwd=template)
    assert failed.returncode == 1, failed.stderr
    started = [job for job in jobs if "tracker" in job.document]
    assert len(started) == 1, "no job runs after the canary failed"
    (canary_job,) = started
    assert canary_job.document["tracker"]["state"] == "failed"
    assert (
        f"canary: job {canary_job.id} failed; stopped before running any other job (3 more "
        f"eligible, left as they are). Fix it, then: aexp rearm {canary_job.id} && python "
        "project.py run --canary" in failed.stderr
    )

    (template / "BUG").unlink()
    rearm = run_cmd([str(Path(PYTHON).parent / "aexp"), "rearm", canary_job.id], cwd=template)
    assert rearm.returncode == 0, rearm.stderr
    passed = run_cmd([PYTHON, "project.py", "run", "--canary", "2"], cwd=template)
    assert passed.returncode == 0, passed.stderr
    assert "canary:" not in passed.stderr
    assert [job.document["tracker"]["state"] for job in jobs] == ["finished"] * 4
    assert all(job.document["tracker"]["attempts"] == 1 for job in jobs if job != canary_job)
