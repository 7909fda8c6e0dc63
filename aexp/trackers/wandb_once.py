"""What `wandb.init` collects for every run although it is the same for every run of a process:
collected here once per process, and still delivered with every run.

A sweep runs hundreds of jobs in one process (`python project.py run`), and W&B 0.31 collects,
at each `wandb.init` (read from wandb/sdk/wandb_run.py `_on_start` and `_populate_git_info`,
wandb/sdk/wandb_settings.py `infer_git_root`, wandb-core's `handleRequestPythonPackages`):

- the installed distributions (setting `x_save_requirements`): `wandb.util.working_set()` reads
  every installed package's metadata (~100 ms per run here, 138 distributions, about two thirds
  of a trivial offline run); wandb-core writes them to the run's `files/requirements.txt`, one
  `<name>==<version>` line each in working-set order, and records that file for upload.
  `requirements_text` builds the same text once per `sys.path`; `deliver_requirements` writes it
  into each run's files directory and records it with `run.save`, so `wandb sync` (or an online
  run) uploads it as W&B would have.
- the git state (setting `disable_git`): `git rev-parse --show-toplevel` for the run's directory,
  then the repository's root, remote URL and HEAD commit: four `git` processes per run, their
  answers sent in the run record. `git_settings` asks git once per directory of job directories
  (and working directory) and hands the answers to each `wandb.init` as W&B's own settings
  `git_root`, `git_remote_url`, `git_commit`, which W&B then uses instead of asking git.

Left to W&B, per run: system metadata (probed by wandb-core in the background, no measurable
cost to the run; it carries the run's start time), code saving and system metrics (both off in
aexp's runs). Anything the user set in W&B's global settings (environment, settings files) wins:
with `x_save_requirements` off no requirements are written, with `disable_git` no git state is
collected, and a user's own `git_root`/`git_remote_url`/`git_commit` are used as W&B uses them.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

REQUIREMENTS_FILE = "requirements.txt"  # wandb-core's RequirementsFileName

log = logging.getLogger(__name__)


def requirements_text() -> str:
    """The text wandb-core writes to a run's requirements.txt: `<name>==<version>\\n` for every
    distribution of `wandb.util.working_set()`, in its order. Collected once per `sys.path`."""
    return _requirements_for(tuple(sys.path))


@cache
def _requirements_for(path: tuple[str, ...]) -> str:
    # `path` only keys the cache: importlib.metadata finds distributions on sys.path.
    from wandb.util import working_set

    return "".join(f"{pkg.key}=={pkg.version}\n" for pkg in working_set())


def deliver_requirements(run: Any) -> None:
    """Write the process's requirements into `run`'s files directory and record the file for
    upload (policy "now", as wandb-core records its own), as `x_save_requirements` would have.

    A file that cannot be written is logged and skipped, as wandb-core does: the run goes on.
    """
    path = Path(run.dir) / REQUIREMENTS_FILE
    try:
        path.write_text(requirements_text(), encoding="utf-8")
    except OSError as exc:
        log.warning("W&B run %s: requirements.txt not written: %s", run.id, exc)
        return
    run.save(str(path), base_path=run.dir, policy="now", glob=False)


def init_settings(wandb: Any, workdir: str | os.PathLike) -> tuple[dict[str, Any], bool]:
    """Settings for `wandb.init(dir=workdir)` that keep it from collecting the process-invariant
    facts itself, and whether the caller must then `deliver_requirements` to the run.

    Reads W&B's global settings (`wandb.setup().settings`: environment and settings files) so
    that whatever the user switched off stays off. A `wandb` without `setup` (a stand-in) is
    left to collect everything itself.
    """
    setup = getattr(wandb, "setup", None)
    if setup is None:
        return {}, False
    user = setup().settings
    settings: dict[str, Any] = {}
    save_requirements = bool(user.x_save_requirements)
    if save_requirements:
        settings["x_save_requirements"] = False
    if not user.disable_git:
        settings.update(
            git_settings(
                str(workdir),
                git_root=user.git_root,
                remote=user.git_remote,
                remote_url=user.git_remote_url,
                commit=user.git_commit,
                populate=not user.x_disable_machine_info,
            )
        )
    return settings, save_requirements


def git_settings(
    workdir: str,
    *,
    git_root: str | None,
    remote: str | None,
    remote_url: str | None,
    commit: str | None,
    populate: bool,
) -> dict[str, str]:
    """W&B's git settings for a run in `workdir`, as W&B would find them: the repository's root
    (`infer_git_root`) and, when `populate`, its remote URL and HEAD commit (`_populate_git_info`).

    Asked once per (directory holding `workdir`, working directory, arguments): every job
    directory of a workspace lies in the same repository. A directory that is itself a
    repository's top (it holds `.git`) is left to W&B. An empty string stands for "none found"
    (W&B then asks git nothing and records nothing, as it would have).
    """
    if git_root is None and os.path.lexists(os.path.join(workdir, ".git")):
        return {}
    parent = os.path.dirname(os.path.abspath(workdir))
    return dict(_git_facts(parent, os.getcwd(), git_root, remote, remote_url, commit, populate))


@cache
def _git_facts(
    parent: str,
    cwd: str,  # W&B asks git in the working directory when the run's is in no repository
    git_root: str | None,
    remote: str | None,
    remote_url: str | None,
    commit: str | None,
    populate: bool,
) -> tuple[tuple[str, str], ...]:
    from wandb.sdk.lib.gitlib import GitRepo

    facts: dict[str, str] = {}
    if git_root is None:
        git_root = GitRepo(root=parent).root_dir
        facts["git_root"] = git_root or ""
    if populate:
        repo = GitRepo(
            root=git_root or None, remote=remote, remote_url=remote_url, commit=commit, lazy=False
        )
        facts["git_remote_url"] = repo.remote_url or ""
        facts["git_commit"] = repo.last_commit or ""
    return tuple(facts.items())
