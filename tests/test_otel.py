"""The otel backend end to end: a sweep through `python project.py run` with a preemption, a
failure and a rerun, synced into a real OTLP/HTTP receiver on loopback (tests/otlp_receiver.py,
decoding with opentelemetry-proto); the written files checked against the OTLP file format; a
sync killed with SIGKILL mid-request and run again. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, copy_template, new_runs, preempt_attempt, run_cmd, set_rc

from aexp.agent.actor import person_id
from aexp.journal import journal_path, read_journal
from aexp.trackers.otel import check_traces_file, span_id, trace_id, traces_path
from aexp.trackers.otel.files import read_lines, sent_path

pytest.importorskip("opentelemetry.proto")
from otlp_receiver import OtlpReceiver

STEP_TIMEOUT = 180


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


def _doc(root: Path, job_id: str) -> dict:
    return json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())


def _project(tmp_path: Path, endpoint: str) -> Path:
    root = copy_template(tmp_path / "project")
    set_rc(root, "tracker", "backend", "noop, otel")
    set_rc(root, "tracker", "project", "traced")
    set_rc(root, "otel", "endpoint", endpoint)
    return root


def _sync(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cmd([PYTHON, "-m", "aexp.cli", "sync-offline", *args], root, env, STEP_TIMEOUT)


def _trace(receiver: OtlpReceiver, run_id: str) -> dict[str, object]:
    """The spans a store holds for run `run_id`'s trace, by span id."""
    tid = trace_id(run_id)
    return {sid: span for (t, sid), span in receiver.stored().items() if t == tid}


def test_a_sweep_with_a_preemption_a_failure_and_a_rerun_arrives_as_its_traces(
    tmp_path: Path,
) -> None:
    env = _env()
    with OtlpReceiver() as receiver:
        root = _project(tmp_path, receiver.url)
        preempted, finished = new_runs(
            root, env, "condition=full|ablated,seed=0,epochs=6,epoch_seconds=0.05"
        )
        (failing,) = new_runs(root, env, "condition=broken,seed=0,epochs=6,fail_at_epoch=2")
        preempt_attempt(root, env, preempted, 2, ("run", "-o", "run_job", "-j"), STEP_TIMEOUT)
        run_cmd([PYTHON, "project.py", "run", "-o", "run_job"], root, env, STEP_TIMEOUT)
        assert _doc(root, failing)["tracker"]["state"] == "failed"
        assert _doc(root, preempted)["tracker"]["attempts"] == 2
        assert receiver.requests == [], "nothing is sent before a sync"

        first = _sync(root, env, "--json")
        assert first.returncode == 0, first.stdout + first.stderr
        runs = {job: _doc(root, job)["tracker"]["run_id"] for job in (preempted, finished, failing)}
        assert len(receiver.requests) == 3, "one request per run"
        sent = {len(_trace(receiver, run_id)) for run_id in runs.values()}
        results = json.loads(first.stdout)["results"]
        said = [r["stdout"] for r in results if r["backend"] == "otel"]
        assert len(said) == 3, first.stdout
        assert all(any(f": {n} span(s), " in line for n in sent) for line in said), said
        for job, run_id in runs.items():
            trace = _trace(receiver, run_id)
            journal = read_journal(journal_path(root / "workspace" / job, run_id))
            attempts = len(journal.attempts)
            assert set(trace) == {span_id(run_id, n) for n in range(attempts + 1)}
            run_span = trace[span_id(run_id, 0)]
            assert run_span.parent is None and run_span.name == f"run {journal.group}"
            for n in range(1, attempts + 1):
                attempt = trace[span_id(run_id, n)]
                assert attempt.parent == run_span.span_id and attempt.name == f"attempt {n}"
                assert run_span.start <= attempt.start <= attempt.end <= run_span.end
            assert run_span.resource == {
                "service.name": "aexp",
                "aexp.project": "traced",
                "aexp.job.id": job,
                "aexp.run.id": run_id,
                "limina.hypothesis_id": "H1",
                "limina.experiment_id": "E1",
                # who launched the run (job.doc["actor"]["launch"], docs/agents.md)
                "aexp.actor.kind": "person",
                "aexp.actor.id": person_id(),
                "aexp.actor.tool": "python project.py run",
            }
            attrs = run_span.attributes
            assert attrs["cicd.pipeline.run.id"] == run_id
            assert attrs["aexp.run.attempts"] == attempts
            assert attrs["aexp.run.rows"] == len(journal.history())
            summary = {k: v for k, v in journal.summary.items() if isinstance(v, float)}
            for key, value in summary.items():
                assert attrs[f"aexp.summary.{key}"] == pytest.approx(value)
            names = [name for s in trace.values() for name, _ in s.events]
            assert "log" not in names and all(n.startswith("aexp.") for n in names)

        # The preempted run: attempt 1 preempted by SIGTERM (status and event), attempt 2 resumed.
        trace = _trace(receiver, runs[preempted])
        one, two = trace[span_id(runs[preempted], 1)], trace[span_id(runs[preempted], 2)]
        assert one.status == (2, "preempted by SIGTERM (exit code 143)")
        assert one.attributes["cicd.pipeline.task.run.result"] == "cancellation"
        assert (
            "aexp.preempted",
            {"aexp.signal": "SIGTERM", "aexp.attempt.exit_code": 143},
        ) in one.events
        assert two.status == (1, "") and two.attributes["aexp.attempt.state"] == "finished"
        (resume,) = [attrs for name, attrs in two.events if name == "aexp.resume"]
        assert resume["aexp.resume.after_step"] == one.attributes["aexp.attempt.last_step"]
        # Each checkpoint is an event of the attempt that wrote it: numbered over the job, after
        # each epoch's row (the template checkpoints every epoch; a SIGTERM stops at one).
        saved = [
            [
                (a["aexp.checkpoint.seq"], a["aexp.checkpoint.last_step"])
                for n, a in s.events
                if n == "aexp.checkpoint"
            ]
            for s in (one, two)
        ]
        assert saved[0] and saved[1], saved
        assert saved[0] + saved[1] == [(step, step) for step in range(6)]
        assert saved[0][-1][1] == one.attributes["aexp.attempt.last_step"]
        assert [s.attributes["aexp.attempt.checkpoints"] for s in (one, two)] == [
            len(x) for x in saved
        ]
        root_span = trace[span_id(runs[preempted], 0)]
        assert (
            root_span.status[0] == 1 and root_span.attributes["cicd.pipeline.result"] == "success"
        )
        # The result file, logged as an artifact when the run finished, is an event.
        artifacts = [attrs for name, attrs in two.events if name == "aexp.artifact"]
        assert [a["aexp.artifact.name"] for a in artifacts] == ["result.json"]
        # The failed run.
        trace = _trace(receiver, runs[failing])
        root_span = trace[span_id(runs[failing], 0)]
        assert root_span.status == (2, "failed with exit code 1")
        assert root_span.attributes["cicd.pipeline.result"] == "failure"
        assert trace[span_id(runs[failing], 1)].status[0] == 2

        for job, run_id in runs.items():
            part = _doc(root, job)["tracker"]["backends"]["otel"]
            assert part["synced_at"] and part["state"]["target"] == receiver.url
            assert check_traces_file(traces_path(root / "workspace" / job, run_id)) == []

        # A second sync sends nothing.
        again = _sync(root, env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(receiver.requests) == 3

        # A rerun: a new run (a new trace) linked to the one it replaced; the old one is not
        # sent again.
        rerun = run_cmd([PYTHON, "-m", "aexp.cli", "rerun", failing], root, env, STEP_TIMEOUT)
        assert rerun.returncode == 0, rerun.stderr
        run_cmd([PYTHON, "project.py", "run", "-o", "run_job"], root, env, STEP_TIMEOUT)
        third = _sync(root, env)
        assert third.returncode == 0, third.stdout + third.stderr
        new_run = _doc(root, failing)["tracker"]["run_id"]
        assert new_run != runs[failing]
        assert len(receiver.requests) == 4
        assert {s.trace_id for s in receiver.requests[-1]} == {trace_id(new_run)}
        new_root = _trace(receiver, new_run)[span_id(new_run, 0)]
        assert new_root.links == [(trace_id(runs[failing]), span_id(runs[failing], 0))]
        # Every span went out once.
        sent = [(s.trace_id, s.span_id) for s in receiver.spans]
        assert len(sent) == len(set(sent))


def test_a_run_that_grows_sends_only_what_is_new(tmp_path: Path) -> None:
    """A preempted run is synced, then resumed: the next sync sends the new attempt and the run
    span's new version, not the first attempt again."""
    env = _env()
    with OtlpReceiver() as receiver:
        root = _project(tmp_path, receiver.url)
        (job,) = new_runs(root, env, "condition=full,seed=0,epochs=6,epoch_seconds=0.05")
        preempt_attempt(root, env, job, 2, ("run", "-o", "run_job", "-j"), STEP_TIMEOUT)
        assert _sync(root, env).returncode == 0
        run_id = _doc(root, job)["tracker"]["run_id"]
        assert [s.span_id for s in receiver.spans] == [span_id(run_id, 0), span_id(run_id, 1)]
        assert receiver.spans[0].attributes["aexp.run.state"] == "preempted"
        run_cmd([PYTHON, "project.py", "run", "-o", "run_job"], root, env, STEP_TIMEOUT, check=True)
        assert _sync(root, env).returncode == 0
        assert [s.span_id for s in receiver.requests[-1]] == [
            span_id(run_id, 0),
            span_id(run_id, 2),
        ]
        assert (
            receiver.stored()[(trace_id(run_id), span_id(run_id, 0))].attributes["aexp.run.state"]
            == "finished"
        )
        # The file holds each version once, a line per export that had something new.
        lines = read_lines(traces_path(root / "workspace" / job, run_id))
        assert [line.span_count for line in lines] == [2, 2]


def test_a_sync_killed_mid_request_then_run_again_stores_every_span_once(tmp_path: Path) -> None:
    env = _env()
    root = _project(tmp_path, "http://127.0.0.1:9/v1/traces")
    jobs = new_runs(root, env, "condition=a|b|c|d,seed=0,epochs=2")
    run_cmd([PYTHON, "project.py", "run", "-o", "run_job"], root, env, STEP_TIMEOUT, check=True)
    with OtlpReceiver(delay=8, hold=2) as receiver:
        set_rc(root, "otel", "endpoint", receiver.url)
        proc = subprocess.Popen(
            [PYTHON, "-m", "aexp.cli", "sync-offline"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + STEP_TIMEOUT
        while len(receiver.requests) < 2:  # the first request answered, the second one held
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # The request the kill interrupted is recorded in flight, not sent.
        flying = []
        for job in jobs:
            run_id = _doc(root, job)["tracker"]["run_id"]
            path = sent_path(root / "workspace" / job, run_id)
            lines = path.read_text().splitlines() if path.exists() else []
            events = [json.loads(line) for line in lines]
            if [e["event"] for e in events][-1:] == ["in_flight"]:
                flying.extend(events[-1]["spans"])
        assert flying and set(flying) == {s.span_id for s in receiver.requests[1]}

        done = _sync(root, env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "sending again 2 span(s)" in done.stderr
        # Every span of every run arrived; the only ones that arrived twice are those of the
        # interrupted request, sent again with the same ids (a store keeps one copy of each).
        expected = {span_id(_doc(root, j)["tracker"]["run_id"], n) for j in jobs for n in (0, 1)}
        arrived = [s.span_id for s in receiver.spans]
        assert set(arrived) == expected
        assert {sid for sid in arrived if arrived.count(sid) > 1} == set(flying)
        assert all(arrived.count(sid) <= 2 for sid in arrived)
        assert len(receiver.stored()) == len(expected)
        # A third sync sends nothing.
        count = len(receiver.requests)
        assert _sync(root, env).returncode == 0
        assert len(receiver.requests) == count


def test_export_otel_writes_checked_files_without_a_network(tmp_path: Path) -> None:
    env = _env()
    root = _project(tmp_path, "none")
    jobs = new_runs(root, env, "condition=a|b,seed=0,epochs=3")
    run_cmd([PYTHON, "project.py", "run", "-o", "run_job"], root, env, STEP_TIMEOUT, check=True)
    out = run_cmd([PYTHON, "-m", "aexp.cli", "export-otel", *jobs, "--check"], root, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("2 span(s), 2 new") == 2
    again = run_cmd([PYTHON, "-m", "aexp.cli", "export-otel", *jobs, "--check"], root, env)
    assert again.stdout.count("2 span(s), 0 new") == 2, "nothing new: nothing appended"
    for job in jobs:
        run_id = _doc(root, job)["tracker"]["run_id"]
        path = traces_path(root / "workspace" / job, run_id)
        assert len(path.read_text().splitlines()) == 1
    # A damaged file is reported, one line per problem, exit 1.
    path.write_text('{"resourceLogs": []}\nnot json\n')
    bad = run_cmd([PYTHON, "-m", "aexp.cli", "export-otel", jobs[-1], "--check"], root, env)
    assert bad.returncode == 1
    assert "not resourceSpans alone" in bad.stderr and "is not JSON" in bad.stderr
