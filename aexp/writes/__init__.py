"""What changes a project, each as one library function that does it and returns its document
(aexp.contract): the CLI's write commands and the MCP server's write tools call the same ones.

    jobs.py      create a sweep, rearm, rerun, remove: aexp.new-run/1, aexp.rearm/1,
                 aexp.rerun/1, aexp.remove/1
    sync.py      sync runs to their backends: aexp.sync-offline/1
    planners.py  each write as a planner (what it would touch, checked, costed) and an applier
    planned.py   every write as a plan first (aexp.plan/1, with a token; aexp.agent.plans),
                 executed only by `apply_plan(token)` while the plan still holds

Each write records who did it (aexp.agent.actor) in the jobs it touches and in the project's
action log (aexp.agent.history).
"""
