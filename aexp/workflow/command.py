"""project.py's command line: find the project from project.py's own folder, run flow's
command line for it, and end with one exit code (aexp.door's table: 0 done, 1 failed, 2 usage or
settings, 128+n a signal) and at most one sentence, whatever ended it.

    settings_or_exit(__file__)   the project's signac.rc, or one line and exit 2
    main(Project)                flow's command line, through the door

flow itself is imported by aexp.workflow.project alone; this module only calls it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import NoReturn

from aexp import door
from aexp.errors import AexpError
from aexp.jobs import find_project_root
from aexp.settings import Settings, load_settings
from aexp.startup import release_interrupts
from aexp.statepoints import leave_out, quiet_statepoint_errors
from aexp.workflow import arguments
from aexp.workflow.project import WorkflowProject, explain


def settings_or_exit(where: str | Path) -> Settings:
    """The settings of the project at `where` (its signac.rc; a file's directory when `where` is
    a file, as project.py passes `__file__`). A signac.rc aexp cannot read ends the process with
    one line (`error: ...`) and exit code 2 (a settings error: aexp.door)."""
    root = Path(where)
    try:
        return load_settings(root.parent if root.is_file() else root)
    except AexpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def project_root(project_class: type[WorkflowProject]) -> str:
    """The directory of the signac project that holds the file defining `project_class`
    (project.py), at or above it: `python <project>/project.py status` works from anywhere.
    Raises ProjectNotFoundError."""
    where = getattr(sys.modules.get(project_class.__module__), "__file__", None)
    if project_class.__module__ == "__main__" and sys.argv and sys.argv[0]:
        # Run as a script: that is argv[0]. `__main__` may be a runner that executes project.py
        # in its own module (`python -m cProfile project.py`, `-m pdb`, `-m trace`).
        where = sys.argv[0]
    return find_project_root(Path(where).resolve().parent if where else None)


def main(project_class: type[WorkflowProject]) -> NoReturn:
    """project.py's door: run flow's command line for `project_class` (its project found from
    project.py's own folder) and exit with the last `run`'s exit code, or with what `explain`
    says of the exception that ended it. A job whose state point signac cannot read is offered
    for repair on a terminal (aexp.door.offer_repair); otherwise, or declined, it is said in one
    line and left out, and the command is done again without it (unless a pass had begun)."""
    door.keep_interrupts()
    quiet_statepoint_errors()
    # flow logs "Error during status update" before raising; the door says it in one line.
    logging.getLogger("flow.project").addFilter(
        lambda record: not str(record.msg).startswith("Error during status update")
    )
    project: WorkflowProject | None = None
    handled: set[str] = set()
    while True:
        try:
            release_interrupts()  # project.py's startup guard: from here a Ctrl-C is said below
            project = project_class(path=project_root(project_class))
            project.main(parser=arguments.for_project(project))
        except (Exception, KeyboardInterrupt) as exc:
            said = explain(exc, project) if project is not None else door.verdict(exc)
            if said is None:
                raise
            fresh = set(said.damaged) - handled
            if fresh and project is not None and not project.pass_started:
                handled |= fresh  # left out now (said when listed), or repaired
                repaired = door.offer_repair(project.workspace, sorted(fresh))
                leave_out(project.workspace, fresh - repaired)
                continue
            if said.line:
                prefix = "" if isinstance(exc, KeyboardInterrupt) else "error: "
                print(f"{prefix}{said.line}", file=sys.stderr)
            sys.exit(said.code)
        sys.exit(_exit_code(project))


def _exit_code(project: WorkflowProject) -> int:
    """How a command that ran to its end exits: `run` as its pass summary says; any other (an
    `exec`) with 1 when an operation it ran failed (aexp.workflow.operations.failed_here; a
    command that ran none never loaded that module)."""
    if project.pass_started or project.exit_code:  # a pass, or a submit that set it
        return project.exit_code
    operations = sys.modules.get("aexp.workflow.operations")
    return door.FAILED if operations is not None and operations.failed_here() else door.OK


__all__ = ["main", "project_root", "settings_or_exit"]
