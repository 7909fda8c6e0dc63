"""A job whose state point file was lost or damaged is rebuilt from its run's journal, with its
id, results and journal unchanged (aexp.statepoints, `aexp repair`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import snapshot
from test_cli import aexp, fails, ok

import aexp as library
from aexp.errors import StatepointError
from aexp.jobdoc import JobDir
from aexp.statepoints import damaged_jobs, rebuild_statepoint, statepoint_problem

STATEPOINTS = [
    {"condition": "full", "seed": 0},
    {"lr": 0.001, "flag": True, "none": None, "name": "a.b/c", "n": -3},
    {"optimizer": {"name": "adam", "betas": [0.9, 0.999]}, "layers": [1, 2, {"x": 1}]},
    {"deep": {"er": {"still": {"k": 1.5}}}, "s": ""},
    # An empty mapping, which the run's flattened config loses: the journal's init_run keeps
    # the state point whole.
    {"empty": {}, "nested": {"none": {}}, "seed": 2},
]


def _finished_job(project, statepoint, hypothesis="H1"):
    job = library.create_run(experiment_id="E1", hypothesis_id=hypothesis, statepoint=statepoint)
    library.bind_tracker(job, "noop", project="p")
    with library.run_lifecycle(job) as tracker:
        tracker.log({"loss": 0.5}, step=0)
    Path(job.path, "result.json").write_text('{"loss": 0.5}')
    return job


DAMAGE = {
    "deleted": lambda p: p.unlink(),
    "empty": lambda p: p.write_text(""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "not an object": lambda p: p.write_text("[]"),
    "edited": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "seed": 99})),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("index", range(len(STATEPOINTS)))
def test_a_damaged_state_point_is_rebuilt_exactly(project, damage: str, index: int) -> None:
    job = _finished_job(project, STATEPOINTS[index])
    sp_file = Path(job.path, "signac_statepoint.json")
    original = json.loads(sp_file.read_text())
    before = {k: v for k, v in snapshot(Path(job.path)).items() if k != sp_file.name}
    DAMAGE[damage](sp_file)
    target = JobDir(job.id, job.path)
    assert statepoint_problem(target) is not None
    assert rebuild_statepoint(target) == original

    result = aexp("repair", job.id[:8], cwd=Path(project.path))
    assert "rebuilt from its journal" in ok(result)
    assert json.loads(sp_file.read_text()) == original
    assert statepoint_problem(target) is None
    # Everything else in the job is as it was, and signac opens the job by its old id.
    after = {k: v for k, v in snapshot(Path(job.path)).items() if k != sp_file.name}
    assert after == before
    import signac

    reopened = signac.get_project(project.path).open_job(id=job.id)
    assert reopened.statepoint() == original


def test_jobs_made_without_a_hypothesis_or_by_signac_directly(project) -> None:
    without = _finished_job(project, {"seed": 1}, hypothesis=None)
    direct = project.open_job({"a": 1, "b": {"c": "d"}})
    direct.init()
    library.bind_tracker(direct, "noop", project="p")
    for job in (without, direct):
        sp = json.loads(Path(job.path, "signac_statepoint.json").read_text())
        Path(job.path, "signac_statepoint.json").unlink()
        assert rebuild_statepoint(JobDir(job.id, job.path)) == sp


def test_repair_all_repairs_every_damaged_job_and_names_what_it_cannot(project) -> None:
    root = Path(project.path)
    jobs = [_finished_job(project, {"seed": seed}) for seed in range(4)]
    Path(jobs[0].path, "signac_statepoint.json").unlink()
    Path(jobs[1].path, "signac_statepoint.json").write_text('{"hypo')
    # A job whose journal is gone too: nothing can rebuild it, and nothing of it is touched.
    Path(jobs[2].path, "signac_statepoint.json").write_text("")
    for journal in Path(jobs[2].path, "tracker_log").glob("*/events.jsonl"):
        journal.unlink()
    untouched = snapshot(Path(jobs[2].path))
    assert [j.id for j in damaged_jobs(str(root / "workspace"))] == sorted(j.id for j in jobs[:3])

    dry = aexp("repair", "--all", "--dry-run", cwd=root)
    assert dry.returncode == 1
    assert not Path(jobs[0].path, "signac_statepoint.json").exists()  # a dry run writes nothing

    result = aexp("repair", "--all", cwd=root)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and "Traceback" not in result.stdout + result.stderr
    by_job = {line.split(":")[0].removeprefix("job "): line for line in lines}
    assert "rebuilt from its journal" in by_job[jobs[0].id]
    assert "rebuilt from its journal" in by_job[jobs[1].id]
    assert "cannot be rebuilt: it has no run journal" in by_job[jobs[2].id]
    assert "rm -r" not in result.stdout  # never advice to delete a job that holds results
    assert snapshot(Path(jobs[2].path)) == untouched
    assert [j.id for j in damaged_jobs(str(root / "workspace"))] == [jobs[2].id]
    # An intact job is said so; a second repair changes nothing.
    assert "is intact" in ok(aexp("repair", jobs[3].id, cwd=root))
    again = json.loads(aexp("repair", "--all", "--json", cwd=root).stdout)
    assert [(j["job_id"], j["repaired"]) for j in again["jobs"]] == [(jobs[2].id, False)]


def test_a_journal_of_another_job_is_not_taken(project) -> None:
    first, second = (_finished_job(project, {"seed": seed}) for seed in (0, 1))
    os.unlink(Path(second.path, "signac_statepoint.json"))
    for path in Path(second.path, "tracker_log").glob("*/events.jsonl"):
        (other,) = Path(first.path, "tracker_log").glob("*/events.jsonl")
        path.write_bytes(other.read_bytes())
    with pytest.raises(StatepointError, match="does not hash to the job's id"):
        rebuild_statepoint(JobDir(second.id, second.path))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "name the jobs to repair, or --all"),
        (["--all", "abc"], "give job ids or --all, not both"),
        (["ffffffff"], "job id 'ffffffff' matches no job"),
    ],
)
def test_repair_bad_input(project, args: list[str], fragment: str) -> None:
    _finished_job(project, {"seed": 0})
    fails(aexp("repair", *args, cwd=Path(project.path)), fragment)
