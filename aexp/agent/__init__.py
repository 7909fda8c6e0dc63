"""What an AI agent (or a person) may do to a project, and the record of who did it.

    actor.py     who acts: a person (user@host) or an agent (its session id), with the tool used
    history.py   the project's append-only log of write actions, `.aexp/actions.jsonl`
    limits.py    `[agent]` in signac.rc, read (aexp.settings calls it)
    budget.py    what the budget allows: how much one call, and one day, may start
    plans.py     a write's plan and its token: nothing is written until the token comes back
    costs.py     what a launch costs, from the operations' directives (CPU- and GPU-hours)
    launch.py    run here in the background (bounded by jobs and wall-clock), submit to SLURM

Every module here imports only the standard library and aexp's core at its top: the job
document's writers record the actor without loading anything else.
"""

from __future__ import annotations

from aexp.lazy import lazy_names

# What the workflow calls around a SLURM submission, imported on first use (PEP 562): `status`
# and `--help` load none of the launch machinery.
__getattr__, __dir__ = lazy_names(
    globals(),
    {"admit_submission": "aexp.agent.launch", "record_submission": "aexp.agent.launch"},
)
__all__ = ["admit_submission", "record_submission"]
