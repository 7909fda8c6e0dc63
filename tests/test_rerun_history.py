"""A job run three times over (`aexp rerun`, twice) keeps the record of every earlier run, in
order, and each earlier run keeps its own result files: the job's workspace holds only the
current run's, so no table or page can take an old run's result for the new one's. On a real
template project run by the real workflow (`python project.py run`, noop backend).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import aexp_cli, ok
from conftest import PYTHON, run_cmd, set_rc

import aexp


def cli(root: Path, *args: str) -> str:
    return ok(aexp_cli(*args, cwd=root))


def binding(job) -> dict:
    return json.loads(Path(job.path, "signac_job_document.json").read_text())["tracker"]


def test_rerun_twice_keeps_both_earlier_runs_in_order_with_their_files(template: Path) -> None:
    set_rc(template, "tracker", "backend", "noop")  # [workflow] artifacts = result.json
    job = aexp.create_run(
        experiment_id="E1", hypothesis_id="H1", statepoint={"seed": 0, "epochs": 2}
    )
    runs = []
    for attempt in range(3):
        run_cmd([PYTHON, "project.py", "run"], template, check=True)
        current = binding(job)
        assert current["state"] == "finished"
        result = Path(job.path, "result.json")
        assert result.exists()
        # Mark the result file as this run's, to follow it when the next rerun moves it.
        result.write_text(json.dumps({**json.loads(result.read_text()), "run": current["run_id"]}))
        runs.append(current["run_id"])
        if attempt < 2:
            said = cli(template, "rerun", job.id)
            assert said.rstrip().endswith(
                "moved checkpoint.0.json, checkpoint.1.json, result.json there"
            ), said
            assert not result.exists()  # the job holds no result until the new run writes one
    assert len(set(runs)) == 3
    final = binding(job)
    assert final["run_id"] == runs[2]
    # Both earlier runs, oldest first, each with its own state and its files kept beside it.
    assert [p["run_id"] for p in final["previous_runs"]] == runs[:2]
    assert [p["state"] for p in final["previous_runs"]] == ["finished", "finished"]
    for run_id in runs[:2]:
        kept = Path(job.path, "tracker_log", run_id)
        assert json.loads((kept / "result.json").read_text())["run"] == run_id
        assert (kept / "checkpoint.0.json").exists() and (kept / "events.jsonl").exists()
    assert json.loads(Path(job.path, "result.json").read_text())["run"] == runs[2]
    # Results show the current run; the dashboard's job page lists the earlier ones with the
    # files each kept.
    (row,) = json.loads(cli(template, "runs", "--json", "--metrics", "loss:count"))["jobs"]
    assert (row["run_id"], row["metrics"]) == (runs[2], {"loss:count": 2})
    pytest.importorskip("signac_dashboard", reason="the page needs the [dashboard] extra")
    from aexp.dashboard import make_dashboard

    dashboard = make_dashboard(root=template)
    client = dashboard.app.test_client()
    client.get(f"/login?token={dashboard.config['ACCESS_TOKEN']}")
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    table = page[page.index(f'id="aexp-previous-{job.id}"') :]
    table = table[: table.index("</table>")]
    rows = table.split("<tr")[2:]  # after the header
    assert [runs[0] in rows[0], runs[1] in rows[1]] == [True, True]
    for row in rows:
        assert "checkpoint.0.json, checkpoint.1.json, result.json" in row
