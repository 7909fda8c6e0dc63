"""`aexp mcp` driven by the MCP SDK's own client over stdio, as an AI agent drives it.

The research loop runs the template's real experiment with the real wandb client offline and
syncs to the loopback W&B stand-in (tests/wandb_server.py; W&B's cloud cannot run here). Every
result is validated against its JSON Schema twice (tests/mcp_client.py). Then the rules of
writes: no token changes nothing, a stale or used token is refused, the budget refuses, bad
arguments are tool errors and the server goes on; two clients at once.
"""

from __future__ import annotations

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

                # The table, and the curve of one run.
                table = await agent.call("runs", metrics=["loss:min"], sort="loss:min")
                assert table["count"] == 5
                assert [r["state"] for r in table["jobs"]].count("finished") == 4
                curve = await agent.call("curve", job_id=jobs[0], metric="loss", max_points=2)
                assert curve["total"] == 3 and len(curve["points"]) == 2 and curve["downsampled"]

                # Diagnose the failure, fix the experiment, run it again as a new run.
                why = await agent.call("diagnose", job_id=bad[:8])
                assert why["state"] == "failed" and "injected failure" in why["why"]
                assert "rerun" in why["next"] and any(
                    "RuntimeError" in l for l in why["error_log"]["tail"]
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
                assert dry["dry_run"] and dry["counts"]["synced"] == 5
                plan = await agent.call("sync")
                assert sorted(plan["jobs"]) == sorted(jobs)
                synced = await agent.call("apply_plan", token=plan["token"])
                assert synced["counts"]["synced"] == 5 and synced["failures"] == []
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
