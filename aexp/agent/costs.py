"""What a launch costs: the directives of the operations it runs, per job (docs/agents.md).

The directives live in project.py (`@Project.operation(directives={"np": 1, "walltime": 1})`,
values or functions of the job), so they are read from the project itself, in a child process
that imports project.py as a module (its `__main__` block does not run) and asks signac-flow's
public API: `project.groups[name].operation_directives`. aexp itself never imports flow; the
child is `python -m aexp.agent.costs`, and project.py's imports (your experiment's too) are
what it costs, once per plan.

    directives_of(root, job_ids, names=("run_job",))   {job id: [{"np", "ngpu", "walltime"}]}
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from aexp.agent.budget import hours_of
from aexp.errors import AexpError

TIMEOUT_S = 300.0


def directives_of(
    root: str | os.PathLike, job_ids: Sequence[str], names: Sequence[str] = ("run_job",)
) -> dict[str, list[dict[str, Any]]]:
    """The directives of each operation that the groups or operations `names` run, for each
    job: `np`, `ngpu` and `walltime` in hours (None when an operation sets none). Raises
    AexpError when project.py cannot be read (one sentence with its last error line)."""
    if not job_ids:
        return {}
    args = [sys.executable, "-m", "aexp.agent.costs", os.fspath(root), ",".join(names)]
    try:
        done = subprocess.run(
            args,
            input="\n".join(job_ids),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=os.fspath(root),
        )
    except subprocess.TimeoutExpired:
        raise AexpError(
            f"reading project.py's directives took more than {TIMEOUT_S:.0f} s; nothing done."
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise AexpError(f"cannot read the directives of project.py: {last}")
    return json.loads(done.stdout)


def _main(root: str, names: list[str], job_ids: list[str]) -> dict[str, Any]:
    sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location("aexp_project", os.path.join(root, "project.py"))
    if spec is None or spec.loader is None:
        raise SystemExit(f"no project.py in {root}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = module.Project()
    groups = project.groups
    unknown = [n for n in names if n not in groups]
    if unknown:
        raise SystemExit(f"project.py has no operation or group {unknown[0]!r}")
    out: dict[str, Any] = {}
    for job_id in job_ids:
        job = project.open_job(id=job_id)
        found = []
        for name in names:
            group = groups[name]
            for op in group.operations:
                # flow's rule: the group's directives for the operation, else its own group's
                given = group.operation_directives.get(op) or groups[op].operation_directives.get(
                    op, {}
                )
                values = {k: (v(job) if callable(v) else v) for k, v in given.items()}
                found.append(
                    {
                        "operation": op,
                        "np": values.get("np", 1),
                        "ngpu": values.get("ngpu", 0),
                        "walltime": hours_of(values.get("walltime")),
                    }
                )
        out[job_id] = found
    return out


if __name__ == "__main__":  # python -m aexp.agent.costs ROOT NAMES < job ids, one a line
    ids = [line.strip() for line in sys.stdin if line.strip()]
    print(json.dumps(_main(sys.argv[1], sys.argv[2].split(","), ids)))
