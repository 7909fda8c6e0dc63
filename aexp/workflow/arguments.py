"""project.py's command line, as flow builds it, made to answer in one sentence: the parser
flow's `main` is given (`FlowParser`), whose refusals are a UsageError (aexp.door: exit code 2),
and which checks what a command names before anything runs:

    -j/--job-id ID..., exec OP ID...   each id (or unique prefix) names a job of the workspace;
                                        a job whose state point cannot be read is named as
                                        damaged (signac's JobsCorruptedError, which the door
                                        offers to repair), one whose document cannot be
                                        read is refused as `aexp show` refuses it
    -o/--operation NAME...             each name (a regular expression, as flow reads it)
                                        matches an operation or group of the project
    next NAME                          NAME is an operation

flow itself prints "Unrecognized flow operation(s)" and runs a pass anyway, ends in a traceback
for an unknown job id or a pattern that is not a regular expression, and prints its usage for a
misspelt option. No flow import here: the parser is plain argparse; project.py's project is
asked for its operation and group names, and the workspace's directories for the jobs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aexp.door import SentenceParser, did_you_mean
from aexp.errors import BindingError, JobNotFoundError, UsageError
from aexp.jobdoc import JobDir
from aexp.jobs import is_job_id
from aexp.statepoints import statepoint_problem
from aexp.workflow.conditions import facts_of
from aexp.workflow.options import add_options


class FlowParser(SentenceParser):
    """The argument parser handed to flow's `FlowProject.main` (argparse gives its sub-parsers
    the same class): one sentence for what argparse refuses (aexp.door.SentenceParser), and,
    on the top-level parser (`for_project`), the names a command gives checked against
    `project` before flow runs anything."""

    project: Any = None

    def add_subparsers(self, **kwargs: Any) -> Any:
        return add_options(super().add_subparsers(**kwargs))  # `--canary` on run and submit

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        parsed = super().parse_args(args, namespace)
        if self.project is not None:
            check_names(self.project, parsed)
            self.project.canary = getattr(parsed, "canary", None)
            self.project.pass_json = bool(getattr(parsed, "json", False))
        return parsed


def for_project(project: Any, prog: str | None = None) -> FlowParser:
    """A FlowParser for `project`'s command line (flow adds the commands to it)."""
    parser = FlowParser(prog=prog)
    parser.project = project
    return parser


def check_names(project: Any, args: argparse.Namespace) -> None:
    """Refuse (UsageError, JobNotFoundError; signac's JobsCorruptedError for a damaged job) any
    job id or operation name in `args` that does not name one of `project`'s; job ids are
    replaced by the full ids they name."""
    names = sorted({*project.operations, *project.groups})
    patterns = getattr(args, "operation_name", None) or getattr(args, "operation", None)
    if isinstance(patterns, list):
        for pattern in patterns:
            check_operation(pattern, names)
    command = getattr(args.func, "__name__", "")
    if command == "_main_run" and getattr(args, "parallel", None) == 0:  # flow would start none
        raise UsageError(
            "-p/--parallel 0 runs nothing: give a number of worker processes, or -p alone "
            "for one per core this process may use."
        )
    timeout = getattr(args, "timeout", None) if command == "_main_run" else None
    if timeout is not None and not (timeout < 0 or 0 < timeout < math.inf):  # 0, nan, inf
        raise UsageError(
            f"-t/--timeout {timeout:g} is no time limit: give the seconds an operation may "
            "run, or leave -t out for no limit."
        )
    if command == "_main_next" and args.name not in project.operations:  # `next NAME`: exact
        check_operation(re.escape(args.name), sorted(project.operations))
    if getattr(args, "job_id", None):
        args.job_id = resolve_job_ids(project.workspace, args.job_id)


def check_operation(pattern: str, names: Iterable[str]) -> None:
    """Refuse a `-o` pattern that is no regular expression, or that matches none of `names`
    (flow matches each name in full)."""
    names = list(names)
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UsageError(
            f"operation {pattern!r} is not a valid name or regular expression ({exc}); "
            f"operations: {', '.join(names)}."
        ) from None
    if not any(compiled.fullmatch(name) for name in names):
        raise UsageError(
            f"unknown operation {pattern!r}{did_you_mean(pattern, names)}; operations: "
            f"{', '.join(names)}."
        )


def selects(groups: Mapping[str, Any], names: Any, operation: str) -> bool:
    """Whether `run`'s `names` (flow's: regular expressions of operation or group names, None
    for every one) select `operation`, alone or in one of `groups` (flow's, by name)."""
    if names is None:
        return True
    for name in names:
        for group_name, group in groups.items():
            try:
                if re.fullmatch(name, group_name) and operation in group.operations:
                    return True
            except re.error:  # flow says it
                return False
    return False


def pooled(np: Any, timeout: Any) -> bool:
    """Whether `run -p NP -t TIMEOUT` (flow's values; None when not given) runs its operations
    in worker processes (aexp.workflow.workerpool): with more than one, or with a time limit,
    which the pass enforces by stopping the worker (flow's own `-t` ran each operation as a
    command of its own, under a shell: outside the pass, its summary and its signals)."""
    return np not in (None, 1) or (timeout is not None and timeout >= 0)


def resolve_job_ids(workspace: str, idents: Iterable[str]) -> list[str]:
    """The full job id each of `idents` (a job id or a unique prefix of one) names among the
    job directories of `workspace`; an aggregate id (`agg-...`) is left to flow. Raises
    JobNotFoundError for one that names none or several, signac's JobsCorruptedError for
    jobs whose state point signac cannot read (the door offers their repair), and BindingError
    for a job whose document aexp cannot read (exit 2, as `aexp show` says it)."""
    try:
        dirs = sorted(n for n in os.listdir(workspace) if is_job_id(n))
    except FileNotFoundError:
        dirs = []
    found: list[str] = []
    damaged: list[str] = []
    for ident in idents:
        ident = ident.strip()
        if ident.startswith("agg-"):
            found.append(ident)
            continue
        matches = [n for n in dirs if n.startswith(ident)] if ident else []
        if len(matches) > 1:
            raise JobNotFoundError(
                f"job id prefix {ident!r} matches {len(matches)} jobs; give more characters."
            )
        if not matches:
            raise JobNotFoundError(
                f"no job with id {ident!r} in {workspace}; python project.py status -d lists "
                "the jobs."
            )
        (job_id,) = matches
        job = JobDir(job_id, os.path.join(workspace, job_id))
        if statepoint_problem(job):
            damaged.append(job_id)
        else:  # named, it is refused as `aexp show` refuses it: nothing can run on it
            error = facts_of(job).error
            if error is not None:
                raise BindingError(f"job {job_id}: {error.removeprefix(f'job {job_id}: ')}")
        found.append(job_id)
    if damaged:
        from signac.errors import JobsCorruptedError

        raise JobsCorruptedError(damaged)
    return found


__all__ = [
    "FlowParser",
    "check_names",
    "check_operation",
    "for_project",
    "pooled",
    "resolve_job_ids",
    "selects",
]
