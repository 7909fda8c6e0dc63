"""The MCP tools of `aexp mcp`, over the library the CLI uses: each returns the same document
(aexp.contract) as the command it mirrors, and each write only plans (apply_plan carries a plan
out). docs/agents.md describes every tool; the docstrings below are what the agent reads.

Every tool is a plain function (the SDK runs it in a worker thread); `register(server, root)`
adds them all to an MCPServer for the project at `root`.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from aexp.agent.actor import current_actor
from aexp.errors import AexpError

# The write tools: each returns a plan (aexp.plan/1) and a token; nothing changes until
# apply_plan(token).
WRITE_TOOLS = ("create_sweep", "run_here", "submit", "rearm", "rerun", "remove", "sync")


def _client(ctx: Any) -> str | None:
    """The MCP client's name (its clientInfo), e.g. "claude-code"; None if it gave none."""
    try:
        return ctx.session.client_params.client_info.name or None
    except AttributeError:
        return None


def register(server: Any, root: str) -> None:
    """Add every tool of aexp to `server` (an MCPServer) for the project at `root`."""
    from aexp.contract import schema_of, schema_of_any

    def actor(ctx: Context, tool: str) -> dict[str, Any]:
        return current_actor(f"mcp:{tool}", root=root, agent=_client(ctx) or "mcp-client")

    def stale_after() -> float:
        from aexp.settings import load_settings

        return load_settings(root).stale_after

    def job(ident: str) -> Any:
        from aexp.jobs import find_job, open_project

        return find_job(open_project(root), ident)

    def plan(ctx: Context, action: str, args: dict[str, Any]) -> dict[str, Any]:
        from aexp.writes.planned import plan_write

        return plan_write(root, action, args, actor=actor(ctx, action))

    # -- reads ----------------------------------------------------------------------------
    def status(
        since: str | None = None, states: list[str] | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """Where every job stands: counts per state, and per job (at most `limit`; `states`
        picks which, e.g. ["failed", "stale", "stalled"]) its state (unbound, bound, running,
        preempted, completed, failed, finished, corrupt), stale (running but dead), stalled
        (running, alive, its journal silent too long), shown (the state as views print it:
        stale or stalled, else the state), each backend synced or due, last step, the error's
        last line; and a cursor. With `since` (a cursor from an earlier status), only the jobs
        that changed since (finished, failed, preempted, gone stale, stalled, created,
        removed, ...) and a new cursor: cheap, poll with it."""
        if limit < 0:
            raise AexpError(f"limit must be 0 or more, not {limit}.")
        if since:
            from aexp.reports.changes import changes_document

            return changes_document(root, since, limit=limit)
        from aexp.reports.status import status_document

        return status_document(root, states=states or (), limit=limit)

    def runs(
        where: list[str] | None = None,
        experiment: str | None = None,
        hypothesis: str | None = None,
        states: list[str] | None = None,
        metrics: list[str] | None = None,
        params: list[str] | None = None,
        sort: str | None = None,
        grouped: bool = False,
        group_by: list[str] | None = None,
    ) -> dict[str, Any]:
        """The runs table, as `aexp runs`: one row per job with its state-point values, run,
        state and metrics. `states`: unbound, corrupt, bound, running, preempted, completed,
        failed, finished, stale (running, dead) or stalled (running, journal silent).
        `where`: filters typed like --sp ("lr=0.1", "seed=0..2", "condition=full|ablated");
        `metrics`: "loss" (last value) or "loss:min|max|mean|first|last|count"; `params`:
        state-point columns (default: those that vary); `sort`: a column ("-loss":
        descending). `grouped` (or `group_by` keys): one row per configuration, by default
        every state-point key but the seed keys, with its runs by state and each metric's
        mean, std and 95% CI over its finished runs (as aexp runs --group-by); `sort` then
        takes a key, a count or an aggregate ("loss:min")."""
        from aexp.cli.sweep import parse_where
        from aexp.reports.runs import runs_report
        from aexp.results.select import Selection

        selection = Selection(
            where=parse_where(where or []),
            experiment=experiment,
            hypothesis=hypothesis,
            states=tuple(states or ()),
        )
        return runs_report(
            root,
            selection,
            metrics=metrics or (),
            params=params,
            sort=sort,
            group_by=group_by or None,
            grouped=grouped or bool(group_by),
        )

    def show(job_id: str) -> dict[str, Any]:
        """Everything about one job (a job id, a unique prefix of one, or a run id): state
        point, document (who created and launched it under "actor"), binding, run files."""
        from aexp.reports.show import show_document

        return show_document(job(job_id))

    def curve(job_id: str, metric: str, max_points: int = 200) -> dict[str, Any]:
        """A metric's history in a job's run, as [step, value] points, at most `max_points`
        (a long run keeps each stretch's lowest and highest value); where attempts were
        preempted or killed."""
        from aexp.reports.curve import curve_document

        return curve_document(job(job_id), metric, max_points=max_points)

    def diagnose(job_id: str) -> dict[str, Any]:
        """Why a job is not running, or failed: one sentence, the tools that move it on, its
        attempts (preempted, killed), the tail of its error.log, the process holding it,
        its heartbeat, and who launched it."""
        from aexp.reports.diagnose import diagnose_document

        return diagnose_document(job(job_id), stale_after=stale_after())

    def sync_plan(job_ids: list[str] | None = None, resync: bool = False) -> dict[str, Any]:
        """What a sync would upload or replay (nothing is sent): per W&B fragment and per
        replayed run, with the counts. `sync` plans the real one."""
        from aexp.writes.sync import sync_document

        ids = [job(i).id for i in job_ids] if job_ids else None
        return sync_document(root, job_ids=ids, dry_run=True, resync=resync)

    def run_progress(handle: str) -> dict[str, Any]:
        """Where a run started by run_here stands (running, done, timed_out, lost), its jobs'
        status and, once done, the pass summary."""
        from aexp.agent.launch import run_progress as progress

        return progress(root, handle)

    # -- writes: each returns a plan; apply_plan carries it out ----------------------------
    def create_sweep(
        ctx: Context, experiment: str, sp: list[str], hypothesis: str | None = None
    ) -> dict[str, Any]:
        """PLAN a sweep: one job per point of the cross product of `sp` (the grammar of aexp
        new-run --sp: "lr=0.1|0.01", "seed=0..4", "condition=full,width=64"). Returns a plan
        and a token; apply_plan(token) creates the jobs."""
        return plan(
            ctx, "create_sweep", {"experiment": experiment, "hypothesis": hypothesis, "sp": sp}
        )

    def run_here(
        ctx: Context, budget_s: float, job_ids: list[str] | None = None, max_jobs: int = 10
    ) -> dict[str, Any]:
        """PLAN running jobs on this machine (python project.py run) in the background: at
        most `max_jobs` eligible jobs (default: any), for at most `budget_s` seconds of wall
        clock (then they are preempted and resume next time). apply_plan(token) starts it and
        returns a handle for run_progress."""
        return plan(ctx, "run_here", {"jobs": job_ids, "max_jobs": max_jobs, "budget_s": budget_s})

    def submit(
        ctx: Context, job_ids: list[str] | None = None, max_jobs: int = 10
    ) -> dict[str, Any]:
        """PLAN submitting eligible jobs to SLURM (python project.py submit), at most
        `max_jobs`. apply_plan(token) submits them."""
        return plan(ctx, "submit", {"jobs": job_ids, "max_jobs": max_jobs})

    def rearm(ctx: Context, job_ids: list[str]) -> dict[str, Any]:
        """PLAN re-arming failed runs: the same run continues from its last checkpoint (after
        a failure that was not the code's). apply_plan(token) re-arms them."""
        return plan(ctx, "rearm", {"jobs": job_ids})

    def rerun(ctx: Context, job_ids: list[str], force: bool = False) -> dict[str, Any]:
        """PLAN running ended jobs again as NEW runs (after fixing the experiment); the old
        runs are kept. `force`: also when an old run was never synced. apply_plan(token)
        binds the new runs; run_here or submit runs them."""
        return plan(ctx, "rerun", {"jobs": job_ids, "force": force})

    def remove(
        ctx: Context,
        job_ids: list[str] | None = None,
        where: list[str] | None = None,
        experiment: str | None = None,
        hypothesis: str | None = None,
        states: list[str] | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """PLAN deleting jobs with their runs and files (named, or selected like runs).
        Refused while another process works on one, or, unless `force`, when a run exists
        nowhere else (not synced yet). apply_plan(token) deletes them."""
        args = {"jobs": job_ids, "where": where, "experiment": experiment}
        args |= {"hypothesis": hypothesis, "states": states, "force": force}
        return plan(ctx, "remove", args)

    def sync(
        ctx: Context, job_ids: list[str] | None = None, resync: bool = False
    ) -> dict[str, Any]:
        """PLAN syncing finished runs to their backends (W&B offline runs uploaded, MLflow
        replayed), from a login node. apply_plan(token) syncs them."""
        return plan(ctx, "sync", {"jobs": job_ids, "resync": resync})

    def apply_plan(ctx: Context, token: str) -> dict[str, Any]:
        """Carry out a plan made by a write tool, once, if the jobs it touches are as the
        plan found them and the budget still allows it. Returns the write's own result."""
        from aexp.writes.planned import apply_plan as apply

        return apply(root, token, actor=actor(ctx, "{action}"))

    # Each tool and the document(s) it returns: published as its output schema, so that the
    # client can check what it gets.
    writes = ("aexp.new-run/1", "aexp.rearm/1", "aexp.rerun/1", "aexp.remove/1")
    writes += ("aexp.sync-offline/1", "aexp.run-here/1", "aexp.submit/1")
    tools = {
        status: ("aexp.status/1", "aexp.status.changes/1"),
        runs: ("aexp.runs/1", "aexp.runs.groups/1"),
        show: ("aexp.show/1",),
        curve: ("aexp.curve/1",),
        diagnose: ("aexp.diagnose/1",),
        sync_plan: ("aexp.sync-offline/1",),
        run_progress: ("aexp.run-here/1",),
        create_sweep: ("aexp.plan/1",),
        run_here: ("aexp.plan/1",),
        submit: ("aexp.plan/1",),
        rearm: ("aexp.plan/1",),
        rerun: ("aexp.plan/1",),
        remove: ("aexp.plan/1",),
        sync: ("aexp.plan/1",),
        apply_plan: writes,
    }
    for function, schemas in tools.items():
        server.add_tool(function, name=function.__name__)
        schema = schema_of(schemas[0]) if len(schemas) == 1 else schema_of_any(*schemas)
        server.publish_output(function.__name__, schema)


__all__ = ["WRITE_TOOLS", "register"]
