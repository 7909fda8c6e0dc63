"""One bad job (or one bad moment) never stops a sweep (issue 12).

Each test runs the real `python project.py run / status / submit` (or the `aexp` CLI) on a copy
of the template, with real signac and, where it says so, the real wandb client offline. Each
checks the three things a user of a sweep cares about: every other job finished, nothing stored
was lost or half-written, and each problem was said in one line (no traceback).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PYTHON, run_cmd, set_rc, snapshot

import aexp
from aexp.checkpoint import read_checkpoint
from aexp.errors import StatepointError
from aexp.journal import journal_path, read_journal
from aexp.state import job_state

AEXP = shutil.which("aexp", path=str(Path(sys.executable).parent)) or str(
    Path(sys.executable).parent / "aexp"
)
DOC = "signac_job_document.json"


# -- helpers ----------------------------------------------------------------------------------
def flow(root: Path, *args: str, env: dict | None = None, timeout: float = 300):
    return run_cmd([PYTHON, "project.py", *args], cwd=root, env=env, timeout=timeout)


def aexp_cli(root: Path, *args: str, env: dict | None = None):
    return run_cmd([AEXP, *args], cwd=root, env=env)


# flow's progress bars on stderr ("Fetching status: 100%|####| 10/10 [00:00<00:00, 9.8it/s]");
# a line printed while one is drawn ends up on the bar's line, after it.
_BAR = re.compile(r"[A-Za-z ]+:\s+\d+%\|[^|]*\|[^\]]*\]")


def lines(text: str) -> list[str]:
    """The non-empty lines of an output, flow's progress bars taken out."""
    return [x.strip() for x in _BAR.sub("\n", text).splitlines() if x.strip()]


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


def doc(job) -> dict:
    return json.loads(Path(job.path, DOC).read_text())


def strict_doc(job) -> dict:
    """The job document parsed as strict JSON (NaN and Infinity literals refused)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(Path(job.path, DOC).read_text(), parse_constant=refuse)


def make_jobs(n: int = 3, **extra: object) -> list:
    return [
        aexp.create_run(
            experiment_id="E018",
            hypothesis_id="H012",
            statepoint={"condition": "full", "seed": seed, "epochs": 3, **extra},
        )
        for seed in range(n)
    ]


def summary(result) -> tuple[str, str]:
    """The pass summary and the next-steps line: the last two lines `run` prints on stdout."""
    out = lines(result.stdout)
    assert len(out) >= 2 and out[-2].startswith("run: ") and out[-1].startswith("next: "), out
    return out[-2], out[-1]


@pytest.fixture
def noop(template: Path) -> Path:
    set_rc(template, "tracker", "backend", "noop")
    return template


# -- 2. state points signac would refuse --------------------------------------------------------
def _contains_itself() -> dict:
    point: dict = {"a": []}
    point["a"].append(point)
    return point


REFUSED_STATEPOINTS = [
    ("nested int key", {"model": {1: "relu"}}, "is not a string"),
    ("int key", {3: "x"}, "is not a string"),
    ("dotted key", {"a.b": 1}, "contains a dot"),
    ("nested dotted key", {"opt": {"lr.max": 1}}, "contains a dot"),
    ("empty key", {"": 1}, "is empty"),
    ("set", {"tags": {"a", "b"}}, "is a set"),
    ("object", {"model": object()}, "is a object"),
    ("bytes", {"blob": b"x"}, "is a bytes"),
    ("NaN", {"lr": float("nan")}, "not a finite number"),
    ("inf", {"lr": float("inf")}, "not a finite number"),
    ("-inf in a list", {"grid": [1.0, float("-inf")]}, "not a finite number"),
    ("1e400", {"lr": 1e400}, "not a finite number"),
    ("contains itself", _contains_itself(), "contains itself"),
]


@pytest.mark.parametrize(
    ("point", "fragment"),
    [r[1:] for r in REFUSED_STATEPOINTS],
    ids=[r[0] for r in REFUSED_STATEPOINTS],
)
def test_create_run_refuses_in_one_sentence_and_leaves_nothing(project, point, fragment) -> None:
    make = aexp.create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"seed": 0})
    before = snapshot(Path(project.workspace))
    with pytest.raises(StatepointError, match=fragment) as caught:
        aexp.create_run(experiment_id="E1", hypothesis_id="H1", statepoint=point)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    assert snapshot(Path(project.workspace)) == before, "a refused state point left something"
    assert make.doc["status"] == "created"


@pytest.mark.parametrize(
    ("sp", "fragment"),
    [
        (["lr=1e400"], "lr=inf is not a finite number"),
        (["lr=0.1|1e400", "seed=0..2"], "lr=inf is not a finite number"),  # 3 good points first
        (["lr=-1e999"], "lr=-inf is not a finite number"),
    ],
    ids=["lr=1e400", "a sweep with one bad point", "lr=-1e999"],
)
def test_new_run_refuses_a_sweep_with_one_bad_point_and_creates_no_job(
    noop: Path, sp: list[str], fragment: str
) -> None:
    make_jobs(1)
    before = snapshot(noop / "workspace")
    args = [a for s in sp for a in ("--sp", s)]
    result = aexp_cli(noop, "new-run", "--experiment", "E1", "--hypothesis", "H1", *args)
    assert result.returncode == 2
    assert lines(result.stderr) == [lines(result.stderr)[0]] and fragment in result.stderr
    assert result.stdout == ""
    no_traceback(result)
    assert snapshot(noop / "workspace") == before, "no job of the sweep was created"


def test_a_directory_that_is_not_a_job_is_reported_once_and_every_job_runs(noop: Path) -> None:
    jobs = make_jobs(3)
    workspace = noop / "workspace"
    # What older aexp left when signac refused a state point: an empty directory; and one
    # whose state point file is empty (a create cut short).
    empty = workspace / ("0" * 32)
    empty.mkdir()
    blank = workspace / ("1" * 32)
    blank.mkdir()
    (blank / "signac_statepoint.json").write_text("")
    strays = {str(empty): snapshot(empty), str(blank): snapshot(blank)}

    result = flow(noop, "run")
    no_traceback(result)
    assert result.returncode == 1, "a directory that needs the user is a problem"
    said = lines(result.stderr)
    assert len(said) == 2, said  # one line per directory, each once
    for path in strays:
        (line,) = [x for x in said if path in x]
        assert line.startswith("warning: ") and f"rm -r {path}" in line
    assert all(doc(job)["tracker"]["state"] == "finished" for job in jobs)
    assert summary(result)[0].startswith("run: 3 finished, 0 failed, 0 preempted, 0 skipped")
    assert "2 problems" in summary(result)[0]
    for path, before in strays.items():
        assert snapshot(Path(path)) == before, "nothing is written into a directory not a job"

    for args in (["status", "-d"], ["run", "-f", "seed", "0"], ["submit", "--pretend"]):
        again = flow(noop, *args)
        no_traceback(again)
        assert again.returncode in (0, 1), again.stderr
        assert len([x for x in lines(again.stderr) if "is not a job" in x]) == 2, again.stderr
    assert jobs[0].id in flow(noop, "status", "-d").stdout


def test_a_damaged_state_point_file_is_one_line_and_the_other_jobs_run(noop: Path) -> None:
    jobs = make_jobs(3)
    flow(noop, "run", "-o", "init_tracker")
    rest, broken = jobs[:2], jobs[2]
    # A state point file damaged by hand, in a job that is still unbound.
    Path(broken.path, DOC).unlink()
    Path(broken.path, "signac_statepoint.json").write_text('{"condition": ')
    before = snapshot(Path(broken.path))
    result = flow(noop, "run")
    no_traceback(result)
    said = lines(result.stderr)
    repair = f"rebuild the state point from its run's journal with: aexp repair {broken.id}"
    assert len(said) == 1 and broken.id in said[0] and said[0].endswith(repair), said
    assert result.returncode == 1 and "1 problem" in summary(result)[0]
    assert all(doc(job)["tracker"]["state"] == "finished" for job in rest)
    assert snapshot(Path(broken.path)) == before
    filtered = flow(noop, "run", "-f", "seed", "0")  # signac reads every state point for -f
    no_traceback(filtered)
    assert filtered.returncode == 1, "the damaged job is a problem of the pass"
    said = [x for x in lines(filtered.stderr) if not x.startswith("Interpreted filter")]
    assert len(said) == 1 and said[0].startswith(f"warning: job {broken.id}: its ")
    assert said[0].endswith(repair) and "rm -r" not in filtered.stderr
    assert snapshot(Path(broken.path)) == before
    # Rebuilt from its journal, it runs like the others.
    assert run_cmd([AEXP, "repair", broken.id], cwd=noop).returncode == 0
    again = flow(noop, "run")
    assert again.returncode == 0, again.stderr
    assert doc(broken)["tracker"]["state"] == "finished"


# -- 3. damaged documents: `corrupt`, said once, never written ---------------------------------
# (where, key, value): a field of aexp's part of the job document with a value of the wrong type.
DAMAGE = [
    ("tracker", "attempts", "3"),
    ("tracker", "attempts", None),
    ("tracker", "attempts", True),
    ("tracker", "attempts", 1.5),
    ("tracker", "attempts", -1),
    ("tracker", "last_step", "x"),
    ("tracker", "last_step", None),
    ("tracker", "last_step", False),
    ("tracker", "exit_code", "0"),
    ("tracker", "exit_code", True),
    ("tracker", "exit_code", [0]),
    ("tracker", "state", 5),
    ("tracker", "state", "exploded"),
    ("tracker", "run_id", None),
    ("tracker", "run_id", 123),
    ("tracker", "backend", None),
    ("tracker", "closed", "yes"),
    ("tracker", "closed", None),
    ("tracker", "summary", []),
    ("tracker", "summary", "loss=1"),
    ("tracker", "offline", "true"),
    ("tracker", "tags", "a,b"),
    ("tracker", "tags", [1, None]),
    ("tracker", "group", None),
    ("tracker", "project", 7),
    ("tracker", "error", 5),
    ("tracker", "finished_at", 5),
    ("tracker", "synced_at", True),
    ("tracker", "bound_at", []),
    ("tracker", "extra", []),
    ("tracker", "backends", []),
    ("tracker", "backends", {"noop": []}),
    ("tracker", "backends", {"noop": {"options": []}}),
    ("tracker", "backends", {"noop": {"synced_at": 1}}),
    ("doc", "tracker", []),
    ("doc", "tracker", "bound"),
    ("doc", "status", 5),
    ("doc", "status", "exploded"),
    ("doc", "attempt", []),
    ("doc", "started_at", 5),
    ("doc", "heartbeat_at", []),
    ("doc", "ended_at", 5),
    ("doc", "wallclock_s", "1.5"),
    ("doc", "wallclock_s", True),
    ("doc", "limina", "E018"),
]


def test_every_wrong_typed_field_is_corrupt_said_once_and_never_written(noop: Path) -> None:
    jobs = [
        aexp.create_run(experiment_id="E018", hypothesis_id="H012", statepoint={"case": k})
        for k in range(len(DAMAGE) + 2)
    ]
    flow(noop, "run", "-o", "init_tracker")
    damaged, good = jobs[: len(DAMAGE)], jobs[len(DAMAGE) :]
    texts = {}
    for job, (where, key, value) in zip(damaged, DAMAGE, strict=True):
        data = doc(job)
        (data["tracker"] if where == "tracker" else data)[key] = value
        texts[job.id] = json.dumps(data)
        Path(job.path, DOC).write_text(texts[job.id])

    for command in (["run"], ["run"], ["status", "-d"]):
        result = flow(noop, *command)
        no_traceback(result)
        assert "TypeError" not in result.stderr and "failed:" not in result.stderr
        said = lines(result.stderr)
        for job, damage in zip(damaged, DAMAGE, strict=True):
            mine = [x for x in said if job.id in x]
            assert len(mine) == 1, (command, damage, mine)  # once per call, however many checks
            assert mine[0].startswith(f"warning: job {job.id}: ")
            assert Path(job.path, DOC).read_text() == texts[job.id], f"{damage} was written"
            assert not Path(job.path, "error.log").exists()
        assert len(said) == len(DAMAGE), said
        if command[0] == "run":
            assert result.returncode == 1
            assert all(doc(job)["tracker"]["state"] == "finished" for job in good)
            assert f"{len(DAMAGE)} problems" in summary(result)[0]
        else:
            rows = {x.split()[0]: x for x in result.stdout.splitlines() if x[:32] in texts}
            assert all(rows[job.id].rstrip().endswith("corrupt") for job in damaged), rows
    assert all(doc(job)["tracker"]["attempts"] == 1 for job in good)


# -- 4. a read-only workspace, a full disk ------------------------------------------------------
def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def mounted(noop: Path):
    """The template's workspace on a 1 MiB tmpfs of its own (root and mount(8) needed)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    workspace = noop / "workspace"
    if not _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(workspace)):
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield workspace
    finally:
        subprocess.run(["umount", "-l", str(workspace)], capture_output=True)


@pytest.fixture
def full_state(noop: Path):
    """The project's `.aexp/` (its action log) on a 1 MiB tmpfs of its own, filled to the last
    page; yields the ballast file (unlink it to free the space)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    state = noop / ".aexp"
    state.mkdir(exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(state)):
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield _fill(state, leave_pages=0)
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True)


@pytest.mark.parametrize(
    ("command", "action"),
    [
        (["new-run", "--experiment", "E018", "--hypothesis", "H012", "--sp", "seed=7"], "create"),
        (["remove", "-y", "--force", "{done}"], "remove"),
        (["rerun", "{done}"], "rerun"),
    ],
)
def test_a_change_whose_record_the_disk_refuses_is_not_made(
    noop: Path, full_state: Path, command: list[str], action: str
) -> None:
    """A full disk under `.aexp/` (the project's action log): a command that changes jobs is
    refused in one line before it changes anything, not carried out with its record lost; once
    there is space, it is carried out and recorded."""
    from aexp.agent.history import log_path, read_actions

    done = make_jobs(1)[0]
    assert flow(noop, "run").returncode == 0
    args = [arg.format(done=done.id) for arg in command]
    before = snapshot(noop / "workspace")

    refused = aexp_cli(noop, *args)
    no_traceback(refused)
    assert refused.returncode == 1, refused.stderr
    (line,) = lines(refused.stderr)
    assert line.startswith(f"aexp: error: the file system of {noop / '.aexp'} is full"), line
    assert line.endswith("run again: nothing was changed."), line
    assert snapshot(noop / "workspace") == before, "nothing changed without its record"

    full_state.unlink()
    again = aexp_cli(noop, *args)
    assert again.returncode == 0, again.stderr
    assert [entry["action"] for entry in read_actions(noop)][-1] == action
    assert Path(log_path(noop)).exists()


def test_a_submission_whose_record_the_disk_refuses_is_not_sent(
    noop: Path, full_state: Path, tmp_path: Path
) -> None:
    """`submit` under flow's SLURM environment (stub sbatch and squeue on PATH: each call of
    sbatch is counted) with `.aexp/` full: refused in one line before anything is sent; once
    there is space, sent once and recorded."""
    from aexp.agent.history import read_actions

    make_jobs(2)
    bin_dir, sent = tmp_path / "bin", tmp_path / "sent"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho x >> {sent}\necho 7\n")
    for tool in ("squeue", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SIGNAC_FLOW_ENVIRONMENT": "DefaultSlurmEnvironment",
    }
    before = snapshot(noop / "workspace")

    refused = flow(noop, "submit", env=env)
    no_traceback(refused)
    assert refused.returncode == 1, refused.stderr
    (line,) = lines(refused.stderr)
    assert line.startswith(f"error: the file system of {noop / '.aexp'} is full"), line
    assert line.endswith("nothing was changed."), line
    assert not sent.exists(), "nothing reached sbatch"
    assert snapshot(noop / "workspace") == before

    full_state.unlink()
    again = flow(noop, "submit", env=env)
    assert again.returncode == 0, again.stderr
    assert len(sent.read_text().splitlines()) == 2  # one batch job per job, each sent once
    assert [entry["action"] for entry in read_actions(noop)][-1] == "submit"


def test_a_read_only_workspace_is_one_line_and_nothing_changes(noop: Path, mounted: Path) -> None:
    jobs = make_jobs(3)
    flow(noop, "run", "-o", "init_tracker")
    assert _mount("-o", "remount,ro", str(mounted))
    before = snapshot(mounted)
    result = flow(noop, "run")
    no_traceback(result)
    assert result.returncode == 1
    (line,) = lines(result.stderr)
    assert line == (
        f"error: the file system of {mounted} is read-only (Read-only file system); free space "
        "(or make it writable) and run again: nothing was run."
    )
    assert snapshot(mounted) == before
    status = flow(noop, "status", "-d")
    assert status.returncode == 0 and all(job.id in status.stdout for job in jobs)
    assert _mount("-o", "remount,rw", str(mounted))
    assert flow(noop, "run").returncode == 0
    assert all(doc(job)["tracker"]["state"] == "finished" for job in jobs)


def _fill(workspace: Path, leave_pages: int) -> Path:
    """Fill the tmpfs at `workspace` but for `leave_pages` pages of 4 KiB."""
    ballast = workspace / "ballast"
    free = os.statvfs(workspace).f_bavail * os.statvfs(workspace).f_frsize
    ballast.write_bytes(b"\0" * (free - leave_pages * 4096))
    assert os.statvfs(workspace).f_bavail * os.statvfs(workspace).f_frsize == leave_pages * 4096
    return ballast


def _journal_appender(where: Path) -> tuple[Path, Callable[..., None]]:
    from aexp.journal.writer import JournalWriter

    writer = JournalWriter(where / "run" / "events.jsonl")
    return writer.path, lambda **fields: writer.event("log", **fields)


def _action_log_appender(where: Path) -> tuple[Path, Callable[..., None]]:
    from aexp.agent.history import log_path, record_action

    actor = {"kind": "person", "id": "tester"}
    return Path(log_path(where)), lambda **fields: record_action(where, "note", actor, [], **fields)


@pytest.mark.parametrize("appender", [_journal_appender, _action_log_appender])
@pytest.mark.parametrize("room", [1, 60, 3000])
def test_a_line_a_full_disk_cuts_short_is_refused_whole(
    mounted: Path, room: int, appender: Callable[[Path], tuple[Path, Callable[..., None]]]
) -> None:
    """A full disk takes the first `room` bytes of a line (what is left of the file's last
    page) and refuses the rest: the line is refused whole, with the disk's error, and the file
    keeps only whole lines; once there is space again, the next line is appended and read. For
    every JSONL file appended to: a run's journal, the project's action log."""
    path, append = appender(mounted)
    append(pad="")
    first = path.stat().st_size
    path.write_bytes(b"")
    append(pad="x" * (4096 - room - first))  # whole lines up to `room` bytes short of a page
    assert path.stat().st_size == 4096 - room
    before = path.read_bytes()
    ballast = _fill(mounted, leave_pages=0)

    with pytest.raises((OSError, aexp.errors.WorkspaceError)) as refused:
        append(pad="y" * 5000)  # more than `room`
    if isinstance(refused.value, OSError):  # the journal: the disk's own error
        assert refused.value.errno == errno.ENOSPC
    else:  # the action log: one sentence, saying that only the record is missing
        said = str(refused.value)
        assert "is full" in said and "only its line in actions.jsonl is missing" in said, said
    assert path.read_bytes() == before, "the part of the line the disk took is taken back"

    ballast.unlink()
    append(pad="z")
    lines_now = path.read_bytes().splitlines()
    assert [json.loads(line)["pad"][:1] for line in lines_now] == ["x", "z"]


@pytest.mark.parametrize("parallel", [[], ["-p", "2"]])
def test_a_disk_that_fills_during_a_pass_is_said_as_what_it_means_for_the_pass(
    noop: Path, mounted: Path, parallel: list[str]
) -> None:
    """Some jobs finish, then the disk is full: the one line says what it means for a pass
    that ran (what it could not do stays eligible), never "nothing was run" beside a summary
    of finished jobs; serially (the operation says it) and with `-p 2` (the pass says it)."""
    from aexp.door import PASS_OUTCOME

    make_jobs(8, epochs=40)
    flow(noop, "run", "-o", "init_tracker")
    _fill(mounted, leave_pages=12)

    result = flow(noop, "run", *parallel)
    no_traceback(result)
    assert result.returncode == 1
    (line,) = lines(result.stderr)
    assert line.startswith(f"error: the file system of {mounted} is full"), line
    assert line.endswith(f"run again: {PASS_OUTCOME}."), line
    run, _ = summary(result)
    assert "1 problem" in run, run


def test_a_full_disk_is_one_line_loses_nothing_and_the_next_run_resumes(
    noop: Path, mounted: Path
) -> None:
    """The disk fills during the first job's attempt (two pages left: its checkpoint files
    take them): one line, exit 1, every document intact. The attempt stopped by the full disk
    wrote its journal's `finish` (preempted) but not its document: the job's state is
    `running` with a process that is gone, `stale` at once. No other attempt starts while the
    disk refuses writes. The next run records it and resumes it."""
    jobs = make_jobs(3, epochs=300)
    flow(noop, "run", "-o", "init_tracker")
    ballast = _fill(mounted, leave_pages=2)

    result = flow(noop, "run")
    no_traceback(result)
    assert result.returncode == 1
    (line,) = lines(result.stderr)
    assert line.startswith(f"error: the file system of {mounted} is full") and "No space" in line
    run, _ = summary(result)
    assert run.startswith("run: 0 finished, 0 failed, 0 preempted, 2 skipped this pass; 1 problem")
    assert not list(mounted.rglob("*.tmp")), "no half-written document is left"
    assert all(strict_doc(job)["tracker"]["state"] == "bound" for job in jobs)
    states = {job.id: job_state(job, stale_after=300).state for job in jobs}
    assert sorted(states.values()) == ["bound", "bound", "running"], states
    (cut,) = [job for job in jobs if states[job.id] == "running"]
    row = next(x for x in flow(noop, "status", "-d").stdout.splitlines() if x.startswith(cut.id))
    assert "running" in row and "stale" in row, row

    ballast.unlink()
    again = flow(noop, "run")
    assert again.returncode == 0, again.stderr
    assert lines(again.stderr) == []
    assert summary(again)[0].startswith("run: 3 finished, 0 failed, 0 preempted, 0 skipped")
    for job in jobs:
        binding = strict_doc(job)["tracker"]
        assert binding["state"] == "finished" and binding["summary"]["epoch"] == 299
        journal = read_journal(journal_path(job.path, binding["run_id"]))
        assert journal.torn_lines == 0
        steps = [row.step for row in journal.history()]
        assert steps == list(range(len(steps))), "one step axis, nothing lost"
        assert {row.metrics["epoch"] for row in journal.rows} == set(range(300))
        assert read_checkpoint(job.path).state["epoch"] == 300
        expected = [(1, True), (2, False)] if job is cut else [(1, False)]
        assert [(a.number, a.preempted) for a in journal.attempts] == expected


def test_a_journal_line_cut_short_is_closed_off_before_the_next_attempt(project) -> None:
    """A write cut short (a full disk, a kill) leaves a torn last line; the next attempt's
    first event starts a line of its own instead of being glued to it (and lost)."""
    job = aexp.create_run(experiment_id="E1", hypothesis_id="H1")
    aexp.bind_tracker(job, "noop", project="p")
    with aexp.run_lifecycle(job) as tracker:
        tracker.log({"loss": 1.0})
    run_id = doc(job)["tracker"]["run_id"]
    path = journal_path(job.path, run_id)
    with open(path, "a") as fh:
        fh.write('{"timestamp": "2026-01-01T00:00:00+00:00", "event": "lo')
    data = doc(job)
    data["tracker"]["state"] = "preempted"
    Path(job.path, DOC).write_text(json.dumps(data))
    with aexp.run_lifecycle(job) as tracker:
        tracker.log({"loss": 0.5})
    journal = read_journal(path)
    assert journal.torn_lines == 1
    assert [a.number for a in journal.attempts] == [1, 2]
    assert [row.step for row in journal.rows] == [0, 1]


# -- 7. Ctrl-C --------------------------------------------------------------------------------
def _start_run(root: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`python project.py run` in a session of its own, as a terminal runs a command."""
    return subprocess.Popen(
        [PYTHON, "project.py", "run", *args],
        cwd=root,
        env=env or dict(os.environ),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_step(job, proc: subprocess.Popen, step: int) -> None:
    deadline = time.monotonic() + 60
    path = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        binding = doc(job).get("tracker", {}) if Path(job.path, DOC).exists() else {}
        if binding.get("run_id"):
            path = journal_path(job.path, binding["run_id"])
            last = read_journal(path).last_step if path.exists() else None
            if last is not None and last >= step:
                return
        time.sleep(0.05)
    pytest.fail("the experiment never got going")


def test_ctrl_c_runs_on_to_the_checkpoint_says_one_line_and_the_next_run_resumes(
    noop: Path,
) -> None:
    (job,) = make_jobs(1, epochs=8, epoch_seconds=0.4)
    proc = _start_run(noop)
    _wait_for_step(job, proc, 1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    (line,) = lines(err)
    assert line.startswith(f"job {job.id}: interrupted (Ctrl-C) at step ")
    assert "recorded as preempted" in line and lines(out) == []
    binding = doc(job)["tracker"]
    assert binding["state"] == "preempted" and binding["exit_code"] == 130 and binding["closed"]
    journal = read_journal(journal_path(job.path, binding["run_id"]))
    assert journal.attempts[-1].preempted and journal.attempts[-1].exit_code == 130
    stopped_at = read_checkpoint(job.path).state["epoch"]
    assert stopped_at == journal.last_step + 1, "it ran on to the checkpoint after the epoch"

    again = flow(noop, "run")
    assert again.returncode == 0, again.stderr
    binding = doc(job)["tracker"]
    assert binding["state"] == "finished" and binding["attempts"] == 2
    journal = read_journal(journal_path(job.path, binding["run_id"]))
    epochs = [row.metrics["epoch"] for row in journal.rows]
    assert epochs == list(range(8)), "no epoch logged twice"
    assert not any(row.redo for row in journal.rows)


def test_a_second_ctrl_c_stops_at_once_and_is_still_one_recorded_line(noop: Path) -> None:
    # An epoch of an hour: only a stop at the signal itself ends this attempt in time.
    (job,) = make_jobs(1, epochs=4, epoch_seconds=3600)
    proc = _start_run(noop)
    _wait_for_step(job, proc, 0)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(1.0)  # a stop at the first signal would have ended the process by now
    assert proc.poll() is None, "the first Ctrl-C waits for the checkpoint"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    (line,) = lines(err)
    assert line.startswith(f"job {job.id}: interrupted (Ctrl-C) at step 1;") and lines(out) == []
    binding = doc(job)["tracker"]
    assert binding["state"] == "preempted" and binding["exit_code"] == 130 and binding["closed"]
    assert read_checkpoint(job.path) is None, "stopped before the epoch's checkpoint"


def test_ctrl_c_between_operations_is_one_line_too(noop: Path) -> None:
    # A run that is stopped while flow picks the next operation (no attempt running).
    make_jobs(2)
    hook = noop / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, signal\n"
        "import flow.project as fp\n"
        "_real = fp.FlowProject._run_operations\n"
        "def _run_operations(self, *args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return _real(self, *args, **kwargs)\n"
        "fp.FlowProject._run_operations = _run_operations\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
    }
    result = flow(noop, "run", env=env)
    assert result.returncode == 130
    assert lines(result.stderr) == ["interrupted (Ctrl-C); run again to go on."]
    assert flow(noop, "run").returncode == 0


# -- 10. the pass summary, serial and with -p ----------------------------------------------------
@pytest.mark.parametrize("parallel", [[], ["-p", "2"]], ids=["serial", "-p 2"])
def test_run_ends_with_a_summary_and_fails_when_an_experiment_failed(
    noop: Path, parallel: list[str]
) -> None:
    jobs = make_jobs(3)
    bad = aexp.create_run(
        experiment_id="E018",
        hypothesis_id="H012",
        statepoint={"condition": "full", "seed": 9, "epochs": 3, "fail_at_epoch": 1},
    )
    result = flow(noop, "run", *parallel)
    no_traceback(result)
    assert result.returncode == 1
    run, then = summary(result)
    assert run == (
        "run: 3 finished, 1 failed, 0 preempted, 0 skipped this pass; no problems; "
        "3 of 4 jobs finished."
    )
    assert then.startswith(
        f"next: job {bad.id} failed: see workspace/{bad.id}/error.log, fix the cause, then "
        f"aexp rearm {bad.id}; results: aexp runs"
    )
    assert [x for x in lines(result.stderr) if "Serialize" not in x] == [
        f"job {bad.id}: failed: RuntimeError: injected failure at epoch 1 (traceback in "
        f"{bad.path}/error.log; re-arm with: aexp rearm {bad.id})"
    ]
    assert all(doc(job)["tracker"]["state"] == "finished" for job in jobs)

    again = flow(noop, "run", *parallel)
    assert again.returncode == 0, "the failure was in an earlier pass"
    assert summary(again)[0].startswith("run: 0 finished, 0 failed, 0 preempted, 0 skipped")

    aexp.rearm(bad)  # not fixed: it fails again, in this pass
    third = flow(noop, "run", *parallel)
    assert third.returncode == 1
    assert summary(third)[0].startswith("run: 0 finished, 1 failed, 0 preempted, 0 skipped")


def test_run_p_2_runs_every_job_of_a_sweep(noop: Path) -> None:
    jobs = make_jobs(6)
    result = flow(noop, "run", "-p", "2")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert summary(result)[0].startswith("run: 6 finished, 0 failed, 0 preempted, 0 skipped")
    for job in jobs:
        binding = doc(job)["tracker"]
        assert binding["state"] == "finished" and binding["attempts"] == 1
        journal = read_journal(journal_path(job.path, binding["run_id"]))
        assert [row.step for row in journal.rows] == [0, 1, 2]


@pytest.mark.parametrize("target", ["a worker", "run itself"])
def test_run_p_2_stopped_by_sigterm_ends_with_143_and_records_the_attempts(
    noop: Path, target: str
) -> None:
    # A pool worker's preempted attempt used to end the worker (SystemExit): its task never
    # reported back and `run -p 2` waited forever. SIGTERM to run itself ended it alone, at once,
    # and its orphaned workers ran on and printed BrokenPipeError tracebacks.
    jobs = make_jobs(4, epochs=8, epoch_seconds=0.3)
    proc = _start_run(noop, "-p", "2")
    _wait_for_step(jobs[0], proc, 1)
    if target == "a worker":
        worker = int(doc(jobs[0])["attempt"]["pid"])
        os.kill(worker, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("run -p 2 hung after SIGTERM")
    assert proc.returncode == 143
    assert "Traceback" not in err
    said = [x for x in lines(err) if "Serialize" not in x]
    assert said and all("recorded as preempted" in x for x in said), said
    states = {doc(job).get("tracker", {}).get("state") for job in jobs}
    assert "running" not in states and "preempted" in states
    again = flow(noop, "run")
    assert again.returncode == 0, again.stderr
    assert all(doc(job)["tracker"]["state"] == "finished" for job in jobs)


# -- 11. the backend's SDK is not installed -----------------------------------------------------
def _without_wandb(root: Path) -> dict[str, str]:
    """An environment in which `import wandb` fails as it does where it is not installed."""
    hide = root.parent / "no-wandb"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['wandb'] = None\n")
    path = os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def test_run_without_wandb_installed_says_so_once_and_runs_nothing(template: Path) -> None:
    jobs = make_jobs(2)
    env = _without_wandb(template)
    before = snapshot(template / "workspace")
    result = flow(template, "run", env=env)
    no_traceback(result)
    assert result.returncode == 2
    assert lines(result.stderr) == [
        "error: [tracker] backend = wandb needs the wandb package, which is not installed; "
        "install it with: pip install 'agentic-experiments[wandb]' (or use backend = noop in "
        "signac.rc); nothing was run."
    ]
    assert snapshot(template / "workspace") == before
    status = flow(template, "status", "-d", env=env)
    assert status.returncode == 0 and all(job.id in status.stdout for job in jobs)
    no_traceback(status)


def test_finish_never_needs_the_backend(template: Path) -> None:
    """A run whose attempt ended but whose end was not recorded (its process died after the
    journal's `finish`) is closed by `finish` with wandb missing."""
    (job,) = make_jobs(1)
    set_rc(template, "tracker", "backend", "noop")
    assert flow(template, "run").returncode == 0
    binding = doc(job)["tracker"]
    # As a process killed right after the journal's commit point leaves it.
    data = doc(job)
    data["tracker"].update(state="running", finished_at=None, closed=False)
    data.update(status="running", attempt={"host": "elsewhere", "pid": 1})
    Path(job.path, DOC).write_text(json.dumps(data))
    set_rc(template, "tracker", "backend", "wandb")
    result = flow(template, "exec", "finish", job.id, env=_without_wandb(template))
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    after = doc(job)["tracker"]
    assert after["state"] == "finished" and after["finished_at"] and after["closed"]
    assert after["run_id"] == binding["run_id"]


# -- 12. submit on a machine without a scheduler ------------------------------------------------
def test_submit_pretend_without_a_scheduler_prints_the_slurm_script(noop: Path) -> None:
    (job,) = make_jobs(1)
    env = {**os.environ, "SIGNAC_FLOW_ENVIRONMENT": "StandardEnvironment"}
    result = flow(noop, "submit", "--pretend", env=env)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    script = result.stdout
    assert script.startswith("#!/bin/bash\n#SBATCH --job-name=")
    assert "#SBATCH --signal=B:USR1@120" in script and f"run -o run_job -j {job.id}" in script
    notes = [x for x in lines(result.stderr) if x.startswith("note: ")]
    assert notes == [
        "note: no scheduler here (flow detected StandardEnvironment); this is the script SLURM "
        "would get, rendered from flow's SLURM template."
    ]

    real = flow(noop, "submit", env=env)
    no_traceback(real)
    assert real.returncode == 2  # a usage error: nothing was sent
    (line,) = lines(real.stderr)
    assert line.startswith("error: no scheduler here (flow detected StandardEnvironment)")


# -- 13. NaN and infinity -----------------------------------------------------------------------
def test_nonfinite_metrics_keep_the_job_document_strict_json(noop: Path) -> None:
    experiment = noop / "experiment.py"
    text = experiment.read_text()
    anchor = "**evaluate(w, b, data)}, step=epoch)"
    assert anchor in text
    experiment.write_text(
        text.replace(
            anchor,
            '**evaluate(w, b, data), "nan": float("nan"), "inf": float("inf"), '
            '"ninf": float("-inf")}, step=epoch)',
        )
    )
    jobs = make_jobs(2)
    result = flow(noop, "run")
    assert result.returncode == 0, result.stderr
    for job in jobs:
        binding = strict_doc(job)["tracker"]
        assert binding["state"] == "finished"
        assert binding["summary"]["nan"] == "NaN" and binding["summary"]["inf"] == "Infinity"
        assert binding["summary"]["ninf"] == "-Infinity"
        for line in journal_path(job.path, binding["run_id"]).read_text().splitlines():
            json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the journal"))
        journal = read_journal(journal_path(job.path, binding["run_id"]))
        assert str(journal.summary["nan"]) == "nan" and journal.summary["ninf"] == float("-inf")


# -- 1. W&B: tags and groups it would refuse, a run it cannot open -------------------------------
def _history_steps(folder: Path) -> list[int]:
    """Every step of an offline W&B fragment's history records, in order."""
    from wandb.proto import wandb_internal_pb2

    from aexp.wandb_offline import fragment_log, read_payloads

    steps = []
    for payload in read_payloads(fragment_log(folder))[0]:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "history":
            items = {i.key: json.loads(i.value_json) for i in record.history.item}
            steps.append(items.get("_step", record.history.step.num))
    return steps


def test_long_tags_and_groups_are_shortened_alike_everywhere_and_wandb_sync_takes_them(
    template: Path, tmp_path: Path
) -> None:
    pytest.importorskip("wandb")
    from wandb_server import FakeWandbServer, wandb_env

    from aexp.validate import GROUP_MAX, TAG_MAX, shorten
    from aexp.wandb_offline import find_fragments, read_fragment

    extra_tag = "from-signac-rc-" + "t" * 70  # 85 characters, from [tracker] tags
    set_rc(template, "tracker", "tags", f"template {extra_tag}")
    condition = "condition-" + "c" * 69  # 79 characters
    hypothesis, experiment = "H" + "h" * 70, "E" + "e" * 70  # a group of 224 characters
    made = [
        aexp_cli(template, "new-run", "--experiment", "E018", "--hypothesis", "H012",
                 "--sp", f"condition={condition}"),
        aexp_cli(template, "new-run", "--experiment", experiment, "--hypothesis", hypothesis,
                 "--sp", "condition=full"),
    ]  # fmt: skip
    assert all(r.returncode == 0 for r in made), [r.stderr for r in made]
    project = aexp.open_project(template)
    jobs = [project.open_job(id=r.stdout.strip()) for r in made]

    result = flow(template, "run", "-o", "run_job")  # the upload is below, to the stand-in
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    expected = [
        (f"H012/E018/{condition}", ["H012", "E018", condition, "template", extra_tag]),
        (
            f"{hypothesis}/{experiment}/full",
            [hypothesis, experiment, "full", "template", extra_tag],
        ),
    ]
    for job, (group, tags) in zip(jobs, expected, strict=True):
        binding = doc(job)["tracker"]
        assert binding["state"] == "finished"
        assert binding["group"] == shorten(group, GROUP_MAX) and len(binding["group"]) <= 128
        assert binding["tags"] == [shorten(t, TAG_MAX) for t in tags]
        assert all(len(t) <= 64 for t in binding["tags"])
        (fragment,) = [read_fragment(f) for f in find_fragments(job.path)]
        assert fragment.tags == binding["tags"] and fragment.group == binding["group"]
    assert doc(jobs[0])["tracker"]["tags"][2] == condition[:55] + "~" + shorten(condition, 64)[-8:]

    with FakeWandbServer() as server:
        synced = run_cmd(
            [AEXP, "sync-offline"], cwd=template, env=wandb_env(tmp_path, server.base_url)
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        runs = server.runs()
    for job in jobs:
        binding = doc(job)["tracker"]
        run = runs[binding["run_id"]]
        assert run["tags"] == binding["tags"] and run["group"] == binding["group"]


def test_an_online_run_without_an_api_key_runs_in_its_journal_and_later_passes_are_quiet(
    template: Path,
) -> None:
    pytest.importorskip("wandb")
    jobs = make_jobs(3)
    env = {**os.environ, "AEXP_OFFLINE": "false"}  # and no WANDB_API_KEY, no netrc
    result = flow(template, "run", env=env)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    said = lines(result.stderr)
    # One warning per job (its W&B mirror could not open), and one line for the whole pass: the
    # runs W&B lacks can be sent from a host with credentials (the sync writes them from the
    # journal), not from this one.
    blocker = [x for x in said if x.startswith("sync_offline: wandb not synced from this host")]
    assert len(blocker) == 1 and "no W&B credentials" in blocker[0], said
    said = [x for x in said if x not in blocker]
    assert len(said) == 3, said
    for job in jobs:
        (line,) = [x for x in said if job.id in x]
        assert line.startswith(f"warning: job {job.id}: the wandb backend could not open the run")
        assert "No API key" in line
        binding = doc(job)["tracker"]
        assert binding["state"] == "finished" and binding["closed"] and binding["finished_at"]
        assert binding["offline"] is False and "No API key" in binding["backends"]["wandb"]["error"]
        journal = read_journal(journal_path(job.path, binding["run_id"]))
        assert [row.step for row in journal.rows] == [0, 1, 2]
    assert summary(result)[0].startswith("run: 3 finished, 0 failed, 0 preempted, 0 skipped")

    for _ in range(2):
        again = flow(template, "run", env=env)
        assert again.returncode == 0, again.stderr
        assert lines(again.stderr) == blocker, again.stderr  # nothing but the one sync line
        assert summary(again)[0] == (
            "run: 0 finished, 0 failed, 0 preempted, 0 skipped this pass; no problems; "
            "3 of 3 jobs finished."
        )
    assert all(doc(job)["tracker"]["attempts"] == 1 for job in jobs)


# -- 8. work re-done after a checkpoint ----------------------------------------------------------
def test_steps_re_done_after_a_checkpoint_are_journaled_once_more_and_sent_to_wandb_once(
    project,
) -> None:
    """An attempt logs step=epoch for epochs 0-4 and checkpoints after epoch 2, then is killed;
    the next one resumes at epoch 3 and logs steps 3 and 4 again. The run never fails for it:
    the journal keeps the re-done rows marked `redo`, W&B keeps the first row at each step."""
    pytest.importorskip("wandb")
    from aexp.wandb_offline import find_fragments, read_fragment

    job = aexp.create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"seed": 0})
    aexp.bind_tracker(job, "wandb", project="p", offline=True)
    with pytest.raises(aexp.Preempted), aexp.run_lifecycle(job) as tracker:
        for epoch in range(5):
            tracker.log({"loss": 1.0 / (epoch + 1), "attempt": 1}, step=epoch)
            if epoch == 2:
                tracker.checkpoint({"epoch": epoch + 1})
        raise aexp.Preempted(signal.SIGTERM)  # killed before the next checkpoint
    with aexp.run_lifecycle(job) as tracker:
        start = tracker.load_checkpoint()["epoch"]
        assert start == 3
        for epoch in range(start, 8):
            tracker.log({"loss": 1.0 / (epoch + 1), "attempt": 2}, step=epoch)

    binding = doc(job)["tracker"]
    assert binding["state"] == "finished" and binding["last_step"] == 7
    journal = read_journal(journal_path(job.path, binding["run_id"]))
    assert [(r.step, r.attempt, r.redo) for r in journal.rows] == [
        (0, 1, False), (1, 1, False), (2, 1, False), (3, 1, False), (4, 1, False),
        (3, 2, True), (4, 2, True), (5, 2, False), (6, 2, False), (7, 2, False),
    ]  # fmt: skip
    assert [r.step for r in journal.history()] == list(range(8))
    first, second = find_fragments(job.path)
    _wait_for_exit_record(second)
    assert _history_steps(first) + _history_steps(second) == list(range(8)), "each step once"
    assert read_fragment(second).summary["attempt"] == 2


def _wait_for_exit_record(folder: Path) -> None:
    # In this process, W&B's service may still be writing the fragment's last block when
    # `finish` returns (a process that exits has always written it): wait for its exit record.
    from aexp.wandb_offline import read_fragment

    deadline = time.monotonic() + 30
    while read_fragment(folder).exit_code is None and time.monotonic() < deadline:
        time.sleep(0.1)
