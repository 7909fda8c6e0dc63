"""One state per job: every view says what aexp.state.job_state says.

A project holds one job in each state a user meets (live and running, stale after its process
died, stalled, a first attempt killed before its document learnt the binding, preempted,
failed, finished, unbound); each view is asked about each job and must give the same state
word (aexp.state.JobState.shown), the same stale and stalled flags and the same run: `aexp
status` (table and --json, --state filter), `aexp show` (text and --json), `aexp diagnose
--json`, `aexp runs` (table, --json and --state filter), the dashboard's pages (through
Flask's test client) and the MCP tools' status document. The command-line views run as real
subprocesses. Jobs are made by writing their documents and journals as an attempt does: a
dead process is one that ran here and was reaped; a live one runs on another host (nothing
here can judge it dead but its heartbeat's age).
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, run_cmd

from aexp import NoopAdapter, bind_tracker, create_run, get_binding
from aexp.contract import check
from aexp.jobdoc import peek_doc, update_doc
from aexp.journal import journal_path
from aexp.state import _HOST, SHOWN_STATES, job_state

ELSEWHERE = {"host": "node-17", "pid": 4242, "slurm_job_id": None, "slurm_restart_count": "0"}
# The least silence that is a stall here: long enough that the live job's few seconds of
# silence while the views run never reach it, short enough for the stalled job's 300 s.
STALL_AFTER = "120"


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _reaped() -> int:
    child = subprocess.Popen([PYTHON, "-c", "pass"])
    child.wait()
    return child.pid


def _journal(job: Any, lines: list[dict[str, Any]]) -> None:
    with open(journal_path(job.path, get_binding(job)["run_id"]), "a") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)


def _attempt(job: Any, where: dict[str, Any], opened: float, rows: list[float]) -> None:
    """Attempt 1 of `job`'s run opened `opened` s ago at `where`, its rows `rows` s ago; the
    document records it running with a fresh heartbeat."""
    lines = [{"timestamp": _ago(opened), "event": "resume_run", "attempt": 1, **where}]
    lines += [
        {"timestamp": _ago(age), "event": "log", "metrics": {"loss": 1.0}, "step": i}
        for i, age in enumerate(rows)
    ]
    _journal(job, lines)
    state = {"status": "running", "attempt": where, "started_at": _ago(opened)}
    update_doc(
        job,
        lambda d: {
            **d,
            **state,
            "heartbeat_at": _ago(0.5),
            "tracker": {**d["tracker"], "state": "running", "attempts": 1},
        },
    )


def _ended(job: Any, state: str, **members: Any) -> None:
    here = {**ELSEWHERE, "host": _HOST, "pid": _reaped()}
    _journal(job, [{"timestamp": _ago(20), "event": "resume_run", "attempt": 1, **here}])
    _journal(job, [{"timestamp": _ago(10), "event": "finish", "attempt": 1, "state": state}])
    tracker = {"state": state, "attempts": 1, "finished_at": _ago(10), **members}
    update_doc(job, lambda d: {**d, "tracker": {**d["tracker"], **tracker}})


def _bound(n: int) -> Any:
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"n": n})
    bind_tracker(job, NoopAdapter(), project="p")
    return job


def _first_attempt_killed_at_once(n: int) -> Any:
    """A job whose first attempt bound it and was killed before its document recorded the
    binding: the run's `init_run` holds it (aexp.binding.pending_binding), the journal the
    attempt of a process now gone."""
    job = _bound(n)
    binding = get_binding(job)
    path = journal_path(job.path, binding["run_id"])
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    lines[0]["binding"] = dict(binding)  # as a first attempt's `init_run` records it
    here = {**ELSEWHERE, "host": _HOST, "pid": _reaped()}
    lines.append({"timestamp": _ago(0.5), "event": "resume_run", "attempt": 1, **here})
    Path(path).write_text("".join(json.dumps(line) + "\n" for line in lines))
    update_doc(job, lambda d: d.pop("tracker") and {"status": "created"})
    return job


def _jobs() -> dict[str, Any]:
    """One job per case, by the word every view must show for it."""
    live, stale, stalled = _bound(0), _bound(1), _bound(2)
    _attempt(live, ELSEWHERE, opened=3, rows=[2.5, 2, 1.5])
    _attempt(stale, {**ELSEWHERE, "host": _HOST, "pid": _reaped()}, opened=3, rows=[2, 1.5])
    _attempt(stalled, ELSEWHERE, opened=400, rows=[300, 299, 298])
    preempted, failed, finished = _bound(3), _bound(4), _bound(5)
    _ended(preempted, "preempted", exit_code=143)
    _ended(failed, "failed", exit_code=1, error="RuntimeError: boom")
    _ended(finished, "finished", exit_code=0)
    unbound = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"n": 7})
    return {
        "running": live,
        "stale": stale,
        "stalled": stalled,
        "killed-first-second": _first_attempt_killed_at_once(6),
        "preempted": preempted,
        "failed": failed,
        "finished": finished,
        "unbound": unbound,
    }


def _aexp(root: Path, *args: str) -> str:
    return run_cmd([PYTHON, "-m", "aexp.cli", *args], root, check=True).stdout


def test_every_view_agrees_with_job_state_for_every_kind_of_job(
    project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEXP_STALL_AFTER", STALL_AFTER)
    root = Path(project.path)
    jobs = _jobs()
    truth = {}
    for job in jobs.values():
        seen = job_state(job)
        run_id = seen.binding["run_id"] if seen.binding else None
        truth[job.id] = (seen.shown, seen.stale, seen.stalled, run_id)
    # The cases are what they say (the journal-only binding is a dead attempt: stale).
    assert {c: truth[j.id][0] for c, j in jobs.items()} == {
        **{c: c for c in jobs},
        "killed-first-second": "stale",
    }
    assert truth[jobs["killed-first-second"].id][3] is not None
    assert "tracker" not in peek_doc(jobs["killed-first-second"])  # the document has none

    status = json.loads(_aexp(root, "status", "--json"))
    check(status)
    for entry in status["jobs"]:
        flags = (entry["shown"], entry["stale"], entry["stalled"], entry["run_id"])
        assert flags == truth[entry["job_id"]], entry
    counts = status["counts"]
    assert (counts["stale"], counts["stalled"], counts["running"]) == (2, 1, 4)

    table = _aexp(root, "status")
    for job_id, (shown, _, _, run_id) in truth.items():
        (row,) = [line for line in table.splitlines() if line.startswith(job_id)]
        assert shown in row and (run_id is None or run_id in row), row

    runs = json.loads(_aexp(root, "runs", "--json"))
    for row in runs["jobs"]:
        shown, _, stalled, run_id = truth[row["job_id"]]
        assert (row["state"] if not stalled else "stalled", row["stalled"]) == (shown, stalled)
        assert row["run_id"] == run_id, row
    runs_table = _aexp(root, "runs")
    for job_id, (shown, _, _, run_id) in truth.items():
        (row,) = [line for line in runs_table.splitlines() if line.startswith(job_id[:8])]
        assert f" {shown} " in f" {row} " and (run_id or " - ") in row, row

    for word in sorted({t[0] for t in truth.values()}):
        assert word in SHOWN_STATES
        want = {job_id for job_id, t in truth.items() if t[0] == word}
        picked = json.loads(_aexp(root, "runs", "--json", "--state", word))["jobs"]
        assert {r["job_id"] for r in picked} == want, word
        listed = json.loads(_aexp(root, "status", "--json", "--state", word))["jobs"]
        assert {e["job_id"] for e in listed} == want, word

    for job_id, (shown, stale, stalled, run_id) in truth.items():
        show = json.loads(_aexp(root, "show", job_id, "--json"))
        check(show)
        assert (show["shown"], show["stale"], show["stalled"]) == (shown, stale, stalled)
        assert (show["tracker"] or {}).get("run_id") == run_id
        text = _aexp(root, "show", job_id)
        assert re.search(rf"^  state  {shown}$", text, re.M), text
        assert ("not bound" in text) is (run_id is None), text
        diagnosis = json.loads(_aexp(root, "diagnose", job_id, "--json"))
        check(diagnosis)
        got = (diagnosis["shown"], diagnosis["stale"], diagnosis["stalled"], diagnosis["run_id"])
        assert got == (shown, stale, stalled, run_id)
        if stalled:
            assert "stalled" in diagnosis["why"] and "executing" not in diagnosis["why"]

    _dashboard_agrees(root, truth)
    _mcp_status_agrees(root, truth)


def _dashboard_agrees(root: Path, truth: dict[str, tuple[Any, ...]]) -> None:
    pytest.importorskip("signac_dashboard", reason="needs signac-dashboard (the [dashboard] extra)")
    from aexp.dashboard import make_dashboard

    dashboard = make_dashboard(root=str(root), metrics=["loss"])
    client = dashboard.app.test_client()
    assert client.get(f"/login?token={dashboard.config['ACCESS_TOKEN']}").status_code == 302
    page = client.get("/project/").get_data(as_text=True)
    rows = dict(re.findall(r'data-job="([0-9a-f]{32})" data-state="(\w+)"', page))
    assert rows == {job_id: t[0] for job_id, t in truth.items()}
    for job_id, (shown, _, _, run_id) in truth.items():
        page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
        tags = re.findall(r'<span class="tag [^"]*aexp-state">(\w+)</span>', page)
        assert tags and tags[0] == shown, (job_id, tags)
        assert run_id is None or f"<code>{run_id}</code>" in page


def _mcp_status_agrees(root: Path, truth: dict[str, tuple[Any, ...]]) -> None:
    """The MCP tool `status` returns aexp.reports.status's document; its `states` take every
    word a view shows."""
    from aexp.reports.status import status_document

    for word in {t[0] for t in truth.values()}:
        listed = status_document(root, states=[word], cursor=False)["jobs"]
        assert {e["job_id"] for e in listed} == {j for j, t in truth.items() if t[0] == word}
