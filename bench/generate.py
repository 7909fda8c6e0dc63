"""Generated projects for the benchmarks, cached under bench/.cache/ and reused.

Large workspaces are written directly in signac 2's layout (no signac calls per job, so 100,000
jobs take seconds, not minutes): `workspace/<id>/signac_statepoint.json` with the id signac
computes (`signac.job.calc_id`: MD5 of the key-sorted JSON), plus the job document aexp writes
(docs/job-document.md) and, for the isfile baseline, one empty marker file per condition that
holds. A cached workspace is reused while its generator version and size match; the template's
files (project.py, experiment.py, signac.rc, .signac) are copied afresh on every use, so the
benchmark always runs the current project.py.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from signac.job import calc_id

from aexp.checkpoint import write_checkpoint
from bench.common import BENCH, CACHE, REPO, TEMPLATE_FILES, log

GENERATOR_VERSION = "7"  # 7: mixes of states, `alive` markers
DONE = ".bench-complete"

# Mixed states, one per index modulo 20 (percentages of the workspace):
#   created (unbound) 20 %, bound 10 %, running 5 %, preempted 5 %, completed 5 %, failed 5 %,
#   finished offline not synced 30 %, finished and synced 20 %; and one job in a thousand has
#   a corrupted binding (a string where the object should be), as if edited by hand.
_STATES = (
    ["created"] * 4
    + ["bound"] * 2
    + ["running", "preempted", "completed", "failed"]
    + ["finished"] * 6
    + ["synced"] * 4
)


def state_of(index: int) -> str:
    if index % 1000 == 999:
        return "corrupt"
    return _STATES[index % len(_STATES)]


def statepoint(index: int) -> dict[str, Any]:
    return {
        "hypothesis_id": "H012",
        "experiment_id": "E018",
        "condition": "ablated" if index % 2 else "full",
        "seed": index,
        "epochs": 20,
    }


def _ts(base: datetime, seconds: float) -> str:
    return (base + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def created_document() -> dict[str, Any]:
    """The document `aexp.create_run` gives a new job."""
    return {"limina": {"experiment_id": "E018", "hypothesis_id": "H012"}, "status": "created"}


def job_document(index: int, state: str, now: datetime) -> dict[str, Any]:
    """The document aexp would have written for a job in `state` (docs/job-document.md)."""
    doc = created_document()
    if state == "created":
        return doc
    if state == "corrupt":
        doc["tracker"] = "finished"
        return doc
    run_id = f"{index:08x}"[-8:]
    condition = "ablated" if index % 2 else "full"
    binding: dict[str, Any] = {
        "backend": "wandb",
        "run_id": run_id,
        "url": None,
        "project": "aexp-demo",
        "group": f"H012/E018/{condition}",
        "offline": True,
        "state": "bound",
        "attempts": 0,
        "last_step": -1,
        "exit_code": None,
        "bound_at": _ts(now, -7200),
        "extra": {
            "entity": None,
            "tags": ["H012", "E018", condition, "template"],
            "notes": None,
            "offline": True,
        },
    }
    doc["tracker"] = binding
    if state == "bound":
        return doc
    started = _ts(now, -3600)
    summary = {"epoch": 19, "loss": 0.3123456789, "accuracy": 0.8828125}
    doc.update(started_at=started, heartbeat_at=started, ended_at=None, wallclock_s=None)
    binding.update(attempts=1, closed=False, error=None, last_step=19, summary=summary)
    if state == "running":
        # Alternate fresh and stale heartbeats, so the stale label has work to do.
        doc.update(status="running", heartbeat_at=_ts(now, 0 if index % 40 < 20 else -3000))
        binding.update(state="running")
        return doc
    ended = _ts(now, -3000)
    doc.update(ended_at=ended, heartbeat_at=ended, wallclock_s=600.0)
    if state == "preempted":
        doc.update(status="preempted")
        binding.update(state="preempted", exit_code=138, closed=True)
    elif state == "completed":
        doc.update(status="complete")
        binding.update(state="completed", exit_code=0)
    elif state == "failed":
        doc.update(status="failed")
        binding.update(
            state="failed",
            exit_code=1,
            error="RuntimeError: injected failure at epoch 2",
            closed=True,
            finished_at=_ts(now, -2900),
        )
    else:  # finished, possibly synced
        doc.update(status="complete")
        binding.update(state="finished", exit_code=0, closed=True, finished_at=_ts(now, -2900))
        if state == "synced":
            binding.update(synced_at=_ts(now, -1000))
    return doc


# What a run of the template's experiment logs per epoch, and how many epochs a run has.
EPOCHS = 20


def journal_lines(
    index: int, state: str, doc: dict[str, Any], epochs: int = EPOCHS
) -> list[str] | None:
    """The run's journal (aexp.journal's events, one JSON object per line) for a job that ran,
    consistent with its document: `epochs` log rows whose last values are the binding's
    summary, a preempted attempt's finish, or none for an attempt still running. None: no
    journal."""
    binding = doc.get("tracker")
    if not isinstance(binding, dict) or state in ("created", "corrupt"):
        return None
    start = datetime.fromisoformat(binding["bound_at"])
    lines = [
        {
            "timestamp": _ts(start, 0),
            "event": "init_run",
            "run_id": binding["run_id"],
            "project": binding["project"],
            "group": binding["group"],
            "tags": binding["extra"]["tags"],
            "config": {**statepoint(index), "job_id": calc_id(statepoint(index))},
            "notes": None,
            "offline": True,
            "backends": ["wandb"],
        }
    ]
    if state != "bound":
        lines.append(
            {"timestamp": _ts(start, 1), "event": "resume_run", "attempt": 1, "host": "node1",
             "pid": 4242, "slurm_job_id": None, "slurm_restart_count": "0"}
        )  # fmt: skip
        summary = binding["summary"]
        for step in range(epochs):
            last = step == epochs - 1
            lines.append(
                {
                    "timestamp": _ts(start, 2 + step),
                    "event": "log",
                    "metrics": {
                        "epoch": step,
                        "loss": summary["loss"] if last else round(0.3 + 0.05 * (epochs - step), 6),
                        "accuracy": summary["accuracy"] if last else round(0.5 + 0.02 * step, 6),
                    },
                    "step": step,
                }
            )
        if state != "running":
            code = binding.get("exit_code") or 0
            lines.append(
                {"timestamp": _ts(start, 30), "event": "finish", "exit_code": code,
                 "preempted": state == "preempted"}
            )  # fmt: skip
    return [json.dumps(line) + "\n" for line in lines]


def write_journal(job_dir: str, run_id: str, lines: list[str]) -> None:
    directory = os.path.join(job_dir, "tracker_log", run_id)
    os.makedirs(directory)
    _write(os.path.join(directory, "events.jsonl"), "".join(lines))


def markers(state: str, index: int) -> list[str]:
    """The baseline's marker files for job `index` in `state` (one per isfile condition that
    holds): `alive` for a running job whose heartbeat is fresh (not eligible to execute)."""
    names = []
    if state == "corrupt":
        return ["corrupt"]
    if is_alive(index, state):
        names.append("alive")
    if state != "created":
        names.append("bound")
    if state in ("completed", "failed", "finished", "synced"):
        names.append("ended")
    if state in ("failed", "finished", "synced"):
        names.append("finished")
    if state == "finished":
        names.append("unsynced")
    if state == "synced":
        names.append("synced")
    return names


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def copy_template(root: Path, *, extra_files: dict[str, Path] | None = None) -> None:
    """Copy the current template files (and baseline project files) into `root`."""
    for name in TEMPLATE_FILES:
        src = REPO / name
        dst = root / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    for name, src in (extra_files or {}).items():
        shutil.copy2(src, root / name)


def write_job(workspace: Path, sp: dict[str, Any], doc: dict[str, Any]) -> str:
    """One job directory in signac's layout (state point and document); returns its path."""
    job_dir = os.path.join(workspace, calc_id(sp))
    os.mkdir(job_dir)
    _write(os.path.join(job_dir, "signac_statepoint.json"), json.dumps(sp))
    _write(os.path.join(job_dir, "signac_job_document.json"), json.dumps(doc))
    return job_dir


def is_generated(root: Path, key: str) -> bool:
    """True if `root` holds a finished generation for `key` (generator version and sizes)."""
    stamp = root / DONE
    return stamp.exists() and stamp.read_text().strip() == key


def mark_generated(root: Path, key: str) -> None:
    """Record that `root` now holds a finished generation for `key` (see `is_generated`)."""
    (root / DONE).write_text(f"{key}\n")


def new_workspace(root: Path) -> Path:
    """An empty `root/workspace`; whatever was at `root` before is removed."""
    if root.exists():
        shutil.rmtree(root)
    workspace = root / "workspace"
    workspace.mkdir(parents=True)
    return workspace


MIXES = ("mixed", "created", "finished")


def mix_state(mix: str, index: int) -> str:
    """The state of job `index` in a workspace of `mix`: "mixed" (`state_of`), "created" (every
    job freshly created, unbound) or "finished" (every run finished offline, not synced)."""
    return state_of(index) if mix == "mixed" else mix


def status_project(n_jobs: int, *, cache: Path = CACHE, mix: str = "mixed") -> Path:
    """A project of `n_jobs` jobs whose states follow `mix` (`mix_state`; generated once, then
    reused); every job that was bound has its run's journal (`journal_lines`). The heartbeats
    of the running jobs that are meant to be alive are renewed on every call (`renew_alive`)."""
    root = cache / (f"status-{n_jobs}" if mix == "mixed" else f"status-{mix}-{n_jobs}")
    key = f"{GENERATOR_VERSION} {n_jobs} {mix}"
    if not is_generated(root, key):
        workspace = new_workspace(root)
        log(f"  generating {n_jobs} jobs ({mix}) in {root} ...")
        now = datetime.now(UTC)
        for index in range(n_jobs):
            state = mix_state(mix, index)
            doc = job_document(index, state, now)
            job_dir = write_job(workspace, statepoint(index), doc)
            for name in markers(state, index):
                _write(os.path.join(job_dir, name), "")
            lines = journal_lines(index, state, doc)
            if lines:
                write_journal(job_dir, doc["tracker"]["run_id"], lines)
        mark_generated(root, key)
    renew_alive(root, n_jobs, mix)
    copy_template(root, extra_files={"baseline_status.py": BENCH / "baselines" / "status.py"})
    return root


def long_journal_project(n_jobs: int, rows: int, *, cache: Path = CACHE) -> Path:
    """A project of `n_jobs` finished runs whose journals have `rows` log rows each (generated
    once, then reused): what a reduction costs on runs of realistic length."""
    root = cache / f"long-{n_jobs}-{rows}"
    key = f"{GENERATOR_VERSION} {n_jobs} {rows} long"
    if not is_generated(root, key):
        workspace = new_workspace(root)
        log(f"  generating {n_jobs} finished runs of {rows} rows in {root} ...")
        now = datetime.now(UTC)
        for index in range(n_jobs):
            doc = job_document(index, "finished", now)
            job_dir = write_job(workspace, statepoint(index), doc)
            lines = journal_lines(index, "finished", doc, epochs=rows)
            write_journal(job_dir, doc["tracker"]["run_id"], lines or [])
        mark_generated(root, key)
    copy_template(root)
    return root


def is_alive(index: int, state: str) -> bool:
    """A running job whose heartbeat is fresh (half of them; the others are stale)."""
    return state == "running" and index % 40 < 20


def renew_alive(root: Path, n_jobs: int, mix: str) -> None:
    """Set the heartbeat of every job meant to be alive (`is_alive`) to now, so that a cached
    workspace keeps the same eligible operations, however old it is (stale_after is minutes)."""
    now = _ts(datetime.now(UTC), 0)
    for index in range(n_jobs):
        if not is_alive(index, mix_state(mix, index)):
            continue
        path = os.path.join(
            root, "workspace", calc_id(statepoint(index)), "signac_job_document.json"
        )
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        doc["heartbeat_at"] = now
        _write(path, json.dumps(doc))


def sweep_statepoint(index: int) -> dict[str, Any]:
    """One point of benchmark 7's sweep: two conditions x seeds, the experiment's default epochs."""
    return {
        "hypothesis_id": "H012",
        "experiment_id": "E018",
        "condition": "ablated" if index % 2 else "full",
        "seed": index // 2,
    }


def fresh_sweep_project(
    root: Path, n_jobs: int, *, backend: str = "noop", experiment: Path | None = None
) -> Path:
    """A new project at `root` (replaced if present) with `n_jobs` created, unbound jobs.

    The jobs are what `aexp.create_run` makes (state point, `limina` and `status: created`); the
    template's files are copied, with signac.rc's backend set to `backend`, plus the baseline.
    `experiment` (a file) replaces the template's experiment.py, for project.py and the
    baseline alike (both import `experiment` from it).
    """
    workspace = new_workspace(root)
    for index in range(n_jobs):
        write_job(workspace, sweep_statepoint(index), created_document())
    extra = {"baseline_sweep.py": BENCH / "baselines" / "sweep.py"}
    if experiment is not None:
        extra["experiment.py"] = experiment
    copy_template(root, extra_files=extra)
    set_rc(root / "signac.rc", "tracker", "backend", backend)
    return root


def set_rc(path: Path, section: str, key: str, value: str) -> None:
    """Set one key of a signac.rc in place, keeping its comments (line edit within the section)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    current, done = None, False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if current == section and not done:
                lines.insert(i, f"{key} = {value}")
                done = True
                break
            current = stripped[1:-1].strip()
        elif current == section and stripped.split("=", 1)[0].strip() == key:
            lines[i] = f"{key} = {value}"
            done = True
            break
    if not done:
        if current != section:
            lines.append(f"[{section}]")
        lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def discovery_project(
    n_jobs: int, n_runs: int, files_per_run: int, *, cache: Path = CACHE
) -> tuple[Path, int]:
    """A project of `n_jobs` jobs, `n_runs` of them with W&B offline-run folders of
    `files_per_run` files each (generated once, then reused). Returns (root, folder count).

    The folders are fakes with W&B's layout (nothing reads their content):
    `<job>/wandb/offline-run-<time>-<id>/` holding `run-<id>.wandb`, `logs/`, `tmp/` and
    `files/` (W&B's metadata files, then `files/media/images/*.png` up to `files_per_run`),
    plus W&B's `latest-run` symlink, `debug*.log` and aexp's step watermark in `wandb/`. Every
    tenth run has a second fragment (a resumed attempt). Every job also holds a few files of its
    own (state point, document, result, checkpoint).
    """
    root = cache / f"discovery-{n_jobs}-{n_runs}-{files_per_run}"
    key = f"{GENERATOR_VERSION} {n_jobs} {n_runs} {files_per_run}"
    stride = max(1, n_jobs // max(n_runs, 1))
    run_jobs = set(range(0, n_jobs, stride)[:n_runs])
    n_folders = sum(2 if (k % 10 == 0) else 1 for k in range(len(run_jobs)))
    if is_generated(root, key):
        copy_template(root)
        return root, n_folders
    workspace = new_workspace(root)
    log(f"  generating {n_jobs} jobs, {n_runs} offline runs x {files_per_run} files in {root} ...")
    now = datetime.now(UTC)
    run_index = 0
    for index in range(n_jobs):
        job_dir = write_job(workspace, statepoint(index), job_document(index, "finished", now))
        _write(os.path.join(job_dir, "result.json"), '{"loss": 0.3}')
        write_checkpoint(job_dir, 19, step=19, state={"epoch": 20})
        if index not in run_jobs:
            continue
        run_id = f"r{index:07x}"[-8:]
        wandb_dir = os.path.join(job_dir, "wandb")
        os.makedirs(os.path.join(wandb_dir, ".cache"))
        _write(os.path.join(wandb_dir, f"aexp-step-{run_id}"), f"{19:20d}\n")
        fragments = 2 if run_index % 10 == 0 else 1
        run_index += 1
        for attempt in range(fragments):
            stamp_time = (now + timedelta(minutes=attempt)).strftime("%Y%m%d_%H%M%S")
            name = f"offline-run-{stamp_time}-{run_id}"
            folder = os.path.join(wandb_dir, name)
            _fake_offline_run(folder, run_id, files_per_run)
            for link in ("latest-run", "debug.log", "debug-internal.log"):
                target = name if link == "latest-run" else os.path.join(name, "logs", link)
                with suppress(FileNotFoundError):
                    os.unlink(os.path.join(wandb_dir, link))
                os.symlink(target, os.path.join(wandb_dir, link))
    mark_generated(root, key)
    copy_template(root)
    return root, n_folders


def _fake_offline_run(folder: str, run_id: str, n_files: int) -> None:
    files = os.path.join(folder, "files")
    media = os.path.join(files, "media", "images")
    for sub in ("logs", "tmp", media):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    _write(os.path.join(folder, f"run-{run_id}.wandb"), ":W&B" + "\0" * 1020)
    fixed = [
        os.path.join(folder, "logs", "debug.log"),
        os.path.join(folder, "logs", "debug-internal.log"),
        os.path.join(folder, "logs", "debug-core.log"),
        os.path.join(files, "config.yaml"),
        os.path.join(files, "output.log"),
        os.path.join(files, "wandb-summary.json"),
        os.path.join(files, "wandb-metadata.json"),
        os.path.join(files, "requirements.txt"),
    ]
    for path in fixed[: max(0, n_files - 1)]:
        _write(path, "x")
    for k in range(max(0, n_files - 1 - len(fixed))):
        _write(os.path.join(media, f"sample_{k}_{k:04x}.png"), "")
