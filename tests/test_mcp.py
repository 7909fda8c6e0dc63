"""`aexp mcp` driven by the MCP SDK's own client over stdio, as an AI agent drives it.

The research loop runs the template's real experiment with the real wandb client offline and
syncs to the loopback W&B stand-in (tests/wandb_server.py; W&B's cloud cannot run here). Every
result is validated against its JSON Schema twice (tests/mcp_client.py). Then the rules of
writes: no token changes nothing, a stale or used token is refused, the budget refuses, bad
arguments are tool errors and the server goes on; two clients at once.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import NEEDS_WANDB, copy_template, set_rc, snapshot
from mcp_client import Agent, serve

from aexp.writes.planners import WRITES

SESSION = "0b7a9f1e-5c3d-4e2a-9d6f-1a2b3c4d5e6f"  # as Claude Code exports it


def _project(tmp_path: Path, backend: str = "noop") -> Path:
    root = copy_template(tmp_path / "project")
    set_rc(root, "tracker", "backend", backend)
    set_rc(root, "workflow", "heartbeat_interval", "1")
    return root


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CLAUDE_CODE_SESSION_ID": SESSION, **extra}


async def _until_done(
    agent: Agent, cursor: str, jobs: set[str], limit: float = 240
) -> tuple[str, list[dict[str, Any]]]:
    """Poll `status(since=cursor)` until every job of `jobs` has finished or failed; the last
    cursor and every change seen."""
    seen: list[dict[str, Any]] = []
    state: dict[str, str] = {}
    deadline = time.monotonic() + limit
    while not all(state.get(j) in ("finished", "failed") for j in jobs):
        assert time.monotonic() < deadline, f"not done: {state}"
        await anyio.sleep(0.5)
        doc = await agent.call("status", since=cursor)
        assert doc["since"] == cursor and doc["cursor"] != cursor
        cursor = doc["cursor"]
        seen += doc["changes"]
        for change in doc["changes"]:
            state[change["job_id"]] = change["job"]["state"] if change["job"] else "removed"
    return cursor, seen


async def _run_and_wait(agent: Agent, jobs: list[str], budget_s: float = 240) -> dict[str, Any]:
    plan = await agent.call("run_here", budget_s=budget_s, job_ids=jobs, max_jobs=len(jobs))
    assert plan["action"] == "run_here" and sorted(plan["jobs"]) == sorted(jobs)
    started = await agent.call("apply_plan", token=plan["token"])
    assert started["schema"] == "aexp.run-here/1" and started["state"] == "running"
    for _ in range(int(budget_s * 4)):
        progress = await agent.call("run_progress", handle=started["handle"])
        if progress["state"] != "running":
            return progress
        await anyio.sleep(0.25)
    raise AssertionError("the run here never ended")


# -- the research loop ------------------------------------------------------------------------
@pytest.mark.wandb
@NEEDS_WANDB[1]
def test_research_loop_over_stdio(tmp_path: Path) -> None:
    from wandb_server import FAKE_API_KEY, FakeWandbServer, wandb_env

    root = _project(tmp_path, backend="wandb")
    with FakeWandbServer() as wandb:
        env = wandb_env(tmp_path, wandb.base_url)
        env.pop("WANDB_API_KEY")  # this host logs in later (see the sync below)
        netrc = tmp_path / "netrc"
        env.update(NETRC=str(netrc), CLAUDE_CODE_SESSION_ID=SESSION)

        async def loop() -> None:
            async with serve(root, env) as agent:
                tools = {t.name: t for t in (await agent.session.list_tools()).tools}
                assert {"status", "runs", "show", "curve", "sync_plan", "diagnose"} <= set(tools)
                assert set(WRITES) | {"apply_plan", "run_progress"} <= set(tools)
                assert all(t.output_schema for t in tools.values())

                # A sweep: 2 conditions x 2 seeds, and one run that fails at its second epoch.
                before = snapshot(root / "workspace")
                plan = await agent.call(
                    "create_sweep",
                    experiment="E1",
                    hypothesis="H1",
                    sp=["condition=full|ablated", "seed=0..1", "epochs=3"],
                )
                assert plan["cost"]["jobs"] == 4 and plan["token"].startswith("p1-")
                assert snapshot(root / "workspace") == before  # a plan writes nothing
                sweep = await agent.call("apply_plan", token=plan["token"])
                assert sweep["created"] == 4 and sweep["actor"]["session_id"] == SESSION
                plan = await agent.call(
                    "create_sweep",
                    experiment="E1",
                    hypothesis="H1",
                    sp=["condition=full,seed=9,epochs=3,fail_at_epoch=1"],
                )
                (bad,) = [
                    j["job_id"]
                    for j in (await agent.call("apply_plan", token=plan["token"]))["jobs"]
                ]
                jobs = [j["job_id"] for j in sweep["jobs"]] + [bad]

                status = await agent.call("status")
                assert status["counts"]["unbound"] == 5 and status["cursor"]
                progress = await _run_and_wait(agent, jobs)
                assert progress["state"] == "done" and progress["exit_code"] == 1  # one failed
                assert progress["pass_summary"]["failed"] == [bad]
                assert sorted(progress["pass_summary"]["finished"]) == sorted(jobs[:4])

                # Poll with the cursor: every change, the failure with its error's last line.
                cursor, changes = await _until_done(agent, status["cursor"], set(jobs))
                final = {c["job_id"]: c for c in changes}
                assert {j: final[j]["change"] for j in jobs} == {
                    **dict.fromkeys(jobs[:4], "finished"),
                    bad: "failed",
                }
                assert final[bad]["job"]["error"] == "RuntimeError: injected failure at epoch 1"
                quiet = await agent.call("status", since=cursor)
                assert quiet["changes"] == [] and quiet["read"] == 0

                # The table, grouped over seeds, and the curve of one run.
                table = await agent.call("runs", metrics=["loss:min"], sort="loss:min")
                assert table["count"] == 5
                assert [r["state"] for r in table["jobs"]].count("finished") == 4
                grouped = await agent.call(
                    "runs", grouped=True, metrics=["loss:min"], sort="loss:min", where=["seed=0..1"]
                )
                assert grouped["schema"] == "aexp.runs.groups/1" and grouped["count"] == 2
                assert {tuple(g["config"].values()) for g in grouped["groups"]} == {
                    ("full",),
                    ("ablated",),
                }
                for group in grouped["groups"]:
                    assert group["runs"] == 2 and group["metrics"]["loss:min"]["n"] == 2
                curve = await agent.call("curve", job_id=jobs[0], metric="loss", max_points=2)
                assert curve["total"] == 3 and len(curve["points"]) == 2 and curve["downsampled"]

                # Diagnose the failure, fix the experiment, run it again as a new run.
                why = await agent.call("diagnose", job_id=bad[:8])
                assert why["state"] == "failed" and "injected failure" in why["why"]
                assert "rerun" in why["next"] and any(
                    "RuntimeError" in line for line in why["error_log"]["tail"]
                )
                experiment = root / "experiment.py"
                experiment.write_text(
                    experiment.read_text().replace(
                        'if sp.get("fail_at_epoch") == epoch:', "if False:"
                    )
                )
                error = await agent.fails("rerun", job_ids=[bad])  # its W&B run was never synced
                assert "has not reached wandb yet" in error and "force" in error
                plan = await agent.call("rerun", job_ids=[bad], force=True)
                rerun = await agent.call("apply_plan", token=plan["token"])
                (again,) = rerun["jobs"]
                assert (
                    again["previous_run"]["state"] == "failed"
                    and again["run_id"] != again["previous_run"]["run_id"]
                )
                progress = await _run_and_wait(agent, [bad])
                assert progress["pass_summary"]["finished"] == [bad] and progress["exit_code"] == 0
                cursor, changes = await _until_done(agent, cursor, {bad})

                # Sync: this host logs in, then the plan and its application.
                netrc.write_text(
                    f"machine {wandb.base_url.split('//')[1]} login user password {FAKE_API_KEY}\n"
                )
                netrc.chmod(0o600)
                dry = await agent.call("sync_plan")
                assert dry["dry_run"] and dry["backends"]["wandb"]["would_upload"] == 5
                plan = await agent.call("sync")
                assert sorted(plan["jobs"]) == sorted(jobs)
                synced = await agent.call("apply_plan", token=plan["token"])
                assert synced["backends"]["wandb"]["uploaded"] == 5 and synced["failed"] == 0
                skipped = [r["run_id"] for r in synced["results"] if r["skipped"]]
                assert skipped == [again["previous_run"]["run_id"]]  # the run a rerun replaced
                status = await agent.call("status")
                assert status["counts"]["finished"] == 5 and status["counts"]["unsynced"] == 0

                # Who did it: the runs the tracker holds name the agent session that started them.
                held = wandb.runs()
                for job in status["jobs"]:
                    config = held[job["run_id"]]["config"]
                    assert config["aexp.actor.kind"] == "agent"
                    assert config["aexp.actor.session_id"] == SESSION
                    assert config["aexp.actor.tool"] in ("mcp:run_here", "mcp:rerun")
                shown = await agent.call("show", job_id=bad)
                actor = shown["document"]["actor"]
                assert actor["create"]["tool"] == "mcp:create_sweep"
                assert actor["rerun"]["session_id"] == SESSION
                assert (actor["launch"]["tool"], actor["launch"]["kind"]) == (
                    "mcp:run_here",
                    "agent",
                )

        anyio.run(loop)
    log = [json.loads(line) for line in (root / ".aexp" / "actions.jsonl").read_text().splitlines()]
    assert [e["action"] for e in log] == ["create", "create", "launch", "rerun", "launch", "sync"]
    assert all(e["actor"]["session_id"] == SESSION for e in log)


# -- writes: plans, tokens, the budget, bad arguments ------------------------------------------
def _workspace(root: Path) -> dict[str, str]:
    """The project as a write would change it: everything but aexp's own state (.aexp/)."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith(".aexp")}


def _new_jobs(root: Path, sp: str) -> list[str]:
    """`aexp new-run --experiment E1 --hypothesis H1 --sp SP`: the job ids."""
    from conftest import PYTHON, run_cmd

    args = ["new-run", "--experiment", "E1", "--hypothesis", "H1", "--sp", sp]
    return run_cmd([PYTHON, "-m", "aexp.cli", *args], root, check=True).stdout.split()


def _failed_job(root: Path, seed: int) -> str:
    """A job whose run failed (the template's experiment, failing at its first epoch)."""
    from conftest import PYTHON, run_cmd

    (job,) = _new_jobs(root, f"seed={seed},epochs=2,fail_at_epoch=0")
    run_cmd([PYTHON, "project.py", "run", "-j", job], root)
    return job


def test_no_token_changes_nothing_and_a_token_works_once(tmp_path: Path) -> None:
    root = _project(tmp_path)
    failed = _failed_job(root, 0)
    _new_jobs(root, "seed=1,epochs=2")

    async def calls() -> None:
        async with serve(root, _env()) as agent:
            before = _workspace(root)
            plans = [
                await agent.call("create_sweep", experiment="E2", sp=["seed=0..2"]),
                await agent.call("run_here", budget_s=60),
                await agent.call("rearm", job_ids=[failed]),
                await agent.call("rerun", job_ids=[failed]),
                await agent.call("remove", job_ids=[failed]),
                await agent.call("remove", states=["failed"]),
            ]
            assert _workspace(root) == before  # six plans, not one change
            assert [p["action"] for p in plans] == [
                "create_sweep", "run_here", "rearm", "rerun", "remove", "remove"
            ]  # fmt: skip
            for p in plans:
                assert p["summary"] and p["apply"].endswith(p["token"])
            token = plans[2]["token"]
            done = await agent.call("apply_plan", token=token)
            assert done["schema"] == "aexp.rearm/1" and done["jobs"][0]["state"] == "bound"
            error = await agent.fails("apply_plan", token=token)
            assert "unknown or already used" in error
            # The rerun and removal planned for a failed job: it is bound now, so both are stale.
            after = _workspace(root)
            for p in plans[3:]:
                error = await agent.fails("apply_plan", token=p["token"])
                assert f"job {failed} changed since the plan (was failed, is bound now)" in error
            assert _workspace(root) == after
            assert "unknown or already used" in await agent.fails("apply_plan", token="p1-x")

    anyio.run(calls)


def test_an_expired_token_or_a_changed_signac_rc_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path)
    set_rc(root, "agent", "plan_ttl", "1")
    failed = _failed_job(root, 0)

    async def calls() -> None:
        async with serve(root, _env()) as agent:
            plan = await agent.call("rearm", job_ids=[failed])
            await anyio.sleep(1.5)
            assert "has expired" in await agent.fails("apply_plan", token=plan["token"])
            plan = await agent.call("rearm", job_ids=[failed])
            set_rc(root, "agent", "max_jobs_per_call", "5")
            error = await agent.fails("apply_plan", token=plan["token"])
            assert "signac.rc changed since this plan" in error

    anyio.run(calls)
    assert (
        json.loads((root / "workspace" / failed / "signac_job_document.json").read_text())[
            "tracker"
        ]["state"]
        == "failed"
    )


def test_the_budget_refuses_in_one_sentence(tmp_path: Path) -> None:
    root = _project(tmp_path)
    set_rc(root, "agent", "max_jobs_per_call", "4")
    set_rc(root, "agent", "cpu_hours_per_day", "2.5")  # execute asks 1 CPU for 1 hour

    async def calls() -> None:
        async with serve(root, _env()) as agent:
            before = _workspace(root)
            error = await agent.fails("create_sweep", experiment="E1", sp=["seed=0..5"])
            assert error == (
                "refused: this sweep touches 6 jobs, more than [agent] max_jobs_per_call = 4 "
                "allows; ask for 4 or fewer at a time, or raise the limit in signac.rc."
            )
            assert _workspace(root) == before
            plan = await agent.call("create_sweep", experiment="E1", sp=["seed=0..3"])
            await agent.call("apply_plan", token=plan["token"])
            error = await agent.fails("run_here", budget_s=36000, max_jobs=4)
            assert error.startswith("refused: this run_here would use 4 CPU-hours") and (
                "cpu_hours_per_day = 2.5" in error
            )
            plan = await agent.call("run_here", budget_s=36000, max_jobs=2)
            assert plan["cost"] == {"jobs": 2, "cpu_hours": 2.0, "gpu_hours": 0.0}
            # A short wall-clock budget bounds the cost: 4 jobs, at most 1 CPU for 10 minutes.
            plan = await agent.call("run_here", budget_s=600, max_jobs=4)
            assert plan["cost"]["cpu_hours"] == round(600 / 3600, 4)

    anyio.run(calls)


def test_bad_arguments_are_tool_errors_and_the_server_goes_on(tmp_path: Path) -> None:
    root = _project(tmp_path)
    job = _failed_job(root, 0)

    async def calls() -> None:
        async with serve(root, _env()) as agent:
            cases = [
                ("create_sweep", {"experiment": "E1", "sp": "seed=1"}, "argument 'sp'"),
                ("create_sweep", {"experiment": "E1", "sp": ["seed"]}, "has no '='"),
                ("create_sweep", {"experiment": "E 1", "sp": ["seed=1"]}, "experiment_id must"),
                ("create_sweep", {"sp": ["seed=1"]}, "argument 'experiment'"),
                ("show", {"job_id": "deadbeef"}, "no job or tracker run with id 'deadbeef'"),
                ("curve", {"job_id": job, "metric": "nope"}, "never logged 'nope'"),
                ("run_here", {"budget_s": -1}, "budget_s must be a positive number"),
                ("run_here", {"budget_s": "soon"}, "argument 'budget_s'"),
                ("status", {"since": "c1-0000000000000000"}, "unknown or has expired"),
                ("status", {"since": "../../etc/passwd"}, "unknown or has expired"),
                ("rearm", {"job_ids": []}, "name at least one job"),
                ("runs", {"where": ["lr"]}, "has no '='"),
                ("run_progress", {"handle": "r1-nope"}, "is not a run handle"),
                ("nosuchtool", {}, "Unknown tool"),
            ]
            for tool, args, said in cases:
                assert said in await agent.fails(tool, **args), (tool, args)
            assert (await agent.call("status"))["total"] == 1  # still serving

    anyio.run(calls)


def test_two_clients_at_once_lose_no_update_and_run_nothing_twice(tmp_path: Path) -> None:
    root = _project(tmp_path)

    async def calls() -> None:
        async with serve(root, _env()) as a, serve(root, _env()) as b:
            # Different writes at once: both land.
            plans = [
                await a.call("create_sweep", experiment="EA", sp=["seed=0..2"]),
                await b.call("create_sweep", experiment="EB", sp=["seed=0..2"]),
            ]
            async with anyio.create_task_group() as tasks:
                for agent, plan in zip((a, b), plans, strict=True):
                    tasks.start_soon(
                        functools.partial(agent.call, "apply_plan", token=plan["token"])
                    )
            status = await a.call("status")
            assert status["counts"]["unbound"] == 6
            # The same token from both at once: carried out once.
            plan = await a.call("run_here", budget_s=120, max_jobs=6)
            results: list[Any] = []

            async def apply(agent: Agent) -> None:
                outcome = await agent.session.call_tool("apply_plan", {"token": plan["token"]})
                results.append(outcome)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(apply, a)
                tasks.start_soon(apply, b)
            assert sorted(r.is_error for r in results) == [False, True]
            # Two plans of the same jobs: the second is refused while the first runs them.
            again = await b.call("run_here", budget_s=120, max_jobs=6)
            handle = next(r for r in results if not r.is_error).structured_content["handle"]
            error = await b.fails("apply_plan", token=again["token"])
            assert f"is being run by {handle}" in error or "changed since the plan" in error
            while (await a.call("run_progress", handle=handle))["state"] == "running":
                await anyio.sleep(0.25)
            done = await a.call("status")
            assert done["counts"]["finished"] == 6 and all(j["attempts"] == 1 for j in done["jobs"])

    anyio.run(calls)
    log = [json.loads(line) for line in (root / ".aexp" / "actions.jsonl").read_text().splitlines()]
    assert [e["action"] for e in log].count("create") == 2
    assert [e["action"] for e in log].count("launch") == 1


# -- streamable HTTP on loopback, behind the owner's secret ----------------------------------
def _http_server(root: Path) -> tuple[Any, str]:
    """`aexp mcp --http 0` started; (the process, its URL)."""
    import re
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "aexp.cli", "-C", str(root), "mcp", "--http", "0"],
        cwd=root,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/mcp);", line)
        if found:
            return proc, found.group(1)
        assert line or proc.poll() is None, "aexp mcp --http exited before listening"
    raise AssertionError("aexp mcp --http never said where it listens")


def test_http_needs_the_owners_secret(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    root = _project(tmp_path)
    _new_jobs(root, "seed=0")
    proc, url = _http_server(root)
    try:
        secret_file = root / ".aexp" / "mcp-secret"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        secret = secret_file.read_text().strip()
        before = _workspace(root)
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "intruder", "version": "0"},
            },
        }
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": secret}):
            request = urllib.request.Request(
                url,
                data=json.dumps(initialize).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                    **headers,
                },
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 401
        assert _workspace(root) == before

        async def with_secret() -> None:
            headers = {"Authorization": f"Bearer {secret}"}
            async with (
                create_mcp_http_client(headers=headers) as http,
                streamable_http_client(url, http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                agent = Agent(session)
                assert (await agent.call("status"))["total"] == 1
                plan = await agent.call("create_sweep", experiment="E9", sp=["seed=0..1"])
                made = await agent.call("apply_plan", token=plan["token"])
                assert made["created"] == 2 and made["actor"]["tool"] == "mcp:create_sweep"

        anyio.run(with_secret)
        assert len(os.listdir(root / "workspace")) == 3
        # Others may not read the secret: the server refuses to start on such a file.
        secret_file.chmod(0o644)
        from conftest import PYTHON, run_cmd

        refused = run_cmd([PYTHON, "-m", "aexp.cli", "-C", str(root), "mcp", "--http", "0"], root)
        assert refused.returncode == 2 and "may be read by others" in refused.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- submit to SLURM --------------------------------------------------------------------------
@pytest.mark.slurm
def test_submit_through_mcp_within_the_budget(tmp_path: Path, slurm: None) -> None:
    """The real cluster (scripts/slurm_cluster.sh): an oversized submission refused at its
    plan, then two jobs submitted with `python project.py submit`, run, and polled to the end."""
    root = _project(tmp_path)
    set_rc(root, "agent", "cpu_hours_per_day", "2")  # execute asks 1 CPU for 1 hour
    nonce = os.urandom(4).hex()  # job ids (SLURM job names) of their own
    env = _env(SIGNAC_FLOW_ENVIRONMENT="DefaultSlurmEnvironment", AEXP_HEARTBEAT="1")

    async def calls() -> None:
        async with serve(root, env) as agent:
            plan = await agent.call(
                "create_sweep", experiment="E1", sp=[f"seed=0..2,nonce={nonce}"]
            )
            jobs = [
                j["job_id"] for j in (await agent.call("apply_plan", token=plan["token"]))["jobs"]
            ]
            cursor = (await agent.call("status"))["cursor"]
            error = await agent.fails("submit", max_jobs=3)
            assert error.startswith("refused: this submit would use 3 CPU-hours")
            plan = await agent.call("submit", job_ids=jobs[:2], max_jobs=2)
            assert plan["cost"] == {"jobs": 2, "cpu_hours": 2.0, "gpu_hours": 0.0}
            sent = await agent.call("apply_plan", token=plan["token"])
            assert sent["submitted"] and sent["exit_code"] == 0, sent["output"]
            assert sum("Submitting cluster job" in line for line in sent["output"]) == 2
            # The day's CPU-hours are spent now: a third job is refused.
            error = await agent.fails("submit", job_ids=jobs[2:], max_jobs=1)
            assert "agents launched 2 in the last 24 hours" in error
            _, changes = await _until_done(agent, cursor, set(jobs[:2]), limit=240)
            assert {c["job_id"]: c["change"] for c in changes if c["change"] == "finished"} == (
                dict.fromkeys(jobs[:2], "finished")
            )
            for job in jobs[:2]:
                launch = (await agent.call("show", job_id=job))["document"]["actor"]["launch"]
                assert (launch["tool"], launch["session_id"]) == ("mcp:submit", SESSION)

    anyio.run(calls)


def test_run_here_stops_at_its_wall_clock_budget_with_a_recorded_preemption(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path)
    set_rc(root, "agent", "grace", "30")
    (slow,) = _new_jobs(root, "seed=0,epochs=80,epoch_seconds=0.1")

    async def calls() -> None:
        async with serve(root, _env()) as agent:
            plan = await agent.call("run_here", budget_s=4, job_ids=[slow], max_jobs=1)
            assert plan["cost"]["cpu_hours"] == round(4 / 3600, 4)  # the budget bounds it
            started = await agent.call("apply_plan", token=plan["token"])
            t0 = time.monotonic()
            while (progress := await agent.call("run_progress", handle=started["handle"]))[
                "state"
            ] == "running":
                assert time.monotonic() - t0 < 60, progress
                await anyio.sleep(0.25)
            assert progress["state"] == "timed_out" and progress["exit_code"] == 143
            (job,) = progress["jobs"]
            assert job["state"] == "preempted" and 0 < job["last_step"] < 79
            why = await agent.call("diagnose", job_id=slow)
            assert why["preemptions"] == 1 and "the next run resumes it" in why["why"]
            # The next run resumes the same run and finishes it.
            done = await _run_and_wait(agent, [slow])
            assert done["state"] == "done" and done["jobs"][0]["state"] == "finished"
            assert done["jobs"][0]["run_id"] == job["run_id"] and done["jobs"][0]["attempts"] == 2

    anyio.run(calls)
