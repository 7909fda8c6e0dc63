"""Several processes (and threads) writing one job document: no update may be lost.

NOTES: signac's own `job.doc` is read-modify-write without an inter-process lock and lost about
45 % of concurrent updates. Every aexp write goes through `aexp.jobdoc.update_doc` under a per-job
file lock; these tests hammer one job from several processes and count every update.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import PYTHON

from aexp import (
    BindingError,
    NoopAdapter,
    bind_tracker,
    create_run,
    get_binding,
    jobdoc,
    joblock,
    open_project,
    update_binding,
)
from aexp.jobdoc import read_doc, update_doc
from aexp.joblock import job_lock
from aexp.mounts import kernel_local

WORKERS = 4
UPDATES = 60  # per worker and per kind

_HAMMER = textwrap.dedent(
    """
    import json, os, sys, time
    from aexp import find_job, open_project, update_binding
    from aexp.jobdoc import update_doc

    worker, updates, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    job = find_job(open_project(), sys.argv[4])
    while not os.path.exists(go):  # start together
        time.sleep(0.001)

    def bump(doc):
        return {f"count_{worker}": doc.get(f"count_{worker}", 0) + 1,
                "total": doc.get("total", 0) + 1}

    for k in range(updates):
        update_doc(job, bump)                                 # a key of its own + a shared one
        update_binding(job, **{f"w{worker}_{k}": k})          # one new binding key per update
    print(json.dumps({"worker": worker, "done": updates}))
    """
)


def _start_together(args_per_worker: list[list[str]], go: Path) -> list[dict]:
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", *args],
            cwd=os.getcwd(),
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in args_per_worker
    ]
    time.sleep(0.3)  # let every interpreter import aexp and reach the start line
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


def test_many_processes_lose_no_update(project, tmp_path):
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"condition": "c"})
    bind_tracker(job, NoopAdapter(), project="p")
    before = get_binding(job)
    t0 = time.monotonic()
    _start_together(
        [[_HAMMER, str(w), str(UPDATES), str(tmp_path / "go"), job.id] for w in range(WORKERS)],
        tmp_path / "go",
    )
    elapsed = time.monotonic() - t0

    doc = json.loads(Path(job.path, "signac_job_document.json").read_text())
    counts = {w: doc.get(f"count_{w}", 0) for w in range(WORKERS)}
    assert counts == dict.fromkeys(range(WORKERS), UPDATES), counts
    assert doc["total"] == WORKERS * UPDATES
    binding_keys = {k for k in doc["tracker"] if k.startswith("w")}
    expected = {f"w{w}_{k}" for w in range(WORKERS) for k in range(UPDATES)}
    lost = expected - binding_keys
    assert not lost, f"{len(lost)} of {len(expected)} binding updates lost"
    # The binding's own fields survived the storm, and signac still reads the document.
    assert {k: doc["tracker"][k] for k in before} == before
    assert job.doc["total"] == WORKERS * UPDATES
    assert elapsed < 30


def _hammer_from_threads(job, threads: int = 4, updates: int = 50) -> dict:
    """Each thread counts `updates` times into a key of its own and a shared one."""

    def hammer(name: str) -> None:
        for _ in range(updates):
            update_doc(job, lambda doc: {"n": doc.get("n", 0) + 1, name: doc.get(name, 0) + 1})

    workers = [threading.Thread(target=hammer, args=(f"t{i}",)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return read_doc(job, fresh=True)


def test_threads_of_one_process_lose_no_update(project):
    """The heartbeat thread writes while the main thread does: the lock serves threads too."""
    doc = _hammer_from_threads(create_run(experiment_id="E1", hypothesis_id="H1"))
    assert doc["n"] == 200
    assert [doc[f"t{i}"] for i in range(4)] == [50] * 4


_BIND = textwrap.dedent(
    """
    import json, os, sys, time
    from aexp import NoopAdapter, bind_tracker, find_job, open_project

    job = find_job(open_project(), sys.argv[2])
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.001)
    print(json.dumps(bind_tracker(job, NoopAdapter(), project="p")))
    """
)


def test_concurrent_binders_create_one_run(project, tmp_path):
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"condition": "c"})
    bindings = _start_together(
        [[_BIND, str(tmp_path / "go"), job.id] for _ in range(WORKERS)], tmp_path / "go"
    )
    run_ids = {b["run_id"] for b in bindings}
    assert len(run_ids) == 1
    assert run_ids == {get_binding(job)["run_id"]}
    assert [d.name for d in Path(job.path, "tracker_log").iterdir()] == list(run_ids)
    events = Path(job.path, "tracker_log", *run_ids, "events.jsonl").read_text().splitlines()
    assert len(events) == 1  # one init_run: the adapter was called once


def test_a_process_reads_its_own_writes_when_stat_cannot_tell_versions_apart(project, monkeypatch):
    """On file systems with coarse mtimes and reused inodes, two versions of the document can
    share (inode, mtime, size); the read cache must still return what this process wrote."""
    job = create_run(experiment_id="E1", hypothesis_id="H1")
    bind_tracker(job, NoopAdapter(), project="p")
    real_stat = os.stat

    def coarse_stat(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if str(path).endswith(job.FN_DOCUMENT):
            return SimpleNamespace(st_ino=1, st_mtime_ns=0, st_size=st.st_size)
        return st

    monkeypatch.setattr(jobdoc.os, "stat", coarse_stat)
    assert get_binding(job)["state"] == "bound"  # cached
    update_binding(job, state="running")
    update_binding(job, state="preempted")  # same length as "completed" below, then back
    assert get_binding(job)["state"] == "preempted"
    update_binding(job, state="completed")
    assert get_binding(job)["state"] == "completed"
    assert read_doc(job)["tracker"]["state"] == "completed"


def test_a_failed_write_leaves_the_document_and_no_temporary_file(project):
    job = create_run(experiment_id="E1", hypothesis_id="H1")
    path = Path(job.path, "signac_job_document.json")
    before = path.read_bytes()
    try:
        update_doc(job, lambda doc: {"bad": object()})
    except TypeError as exc:
        assert job.id in str(exc) and "'bad'" in str(exc)
    else:
        raise AssertionError("an unserialisable value was stored")
    assert path.read_bytes() == before
    assert not [p for p in Path(job.path).iterdir() if p.name.endswith(".tmp")]


_HOLD = textwrap.dedent(
    """
    import sys, time
    from aexp import find_job, open_project
    from aexp.joblock import job_lock

    with job_lock(find_job(open_project(), sys.argv[1])):
        print("holding", flush=True)
        time.sleep(600)
    """
)


def test_a_held_lock_times_out_with_a_sentence_and_a_killed_holder_frees_it(project, monkeypatch):
    job = create_run(experiment_id="E1", hypothesis_id="H1")
    holder = subprocess.Popen(
        [PYTHON, "-c", _HOLD, job.id], cwd=os.getcwd(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        monkeypatch.setattr(joblock, "LOCK_TIMEOUT_S", 0.3)
        with pytest.raises(BindingError, match="another process has held its lock"):
            update_doc(job, lambda doc: {"n": 1})
        assert "n" not in read_doc(job, fresh=True), "nothing written without the lock"
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        holder.wait(timeout=30)
    update_doc(job, lambda doc: {"n": 1})
    assert read_doc(job, fresh=True)["n"] == 1


def test_the_lock_is_reentrant_within_a_thread(project):
    job = create_run(experiment_id="E1", hypothesis_id="H1")
    with job_lock(job):
        # A change that itself updates the document (nested lock) must not deadlock.
        update_doc(job, lambda doc: {"n": 1})
        update_doc(job, lambda doc: {"m": doc["n"] + 1})
    assert read_doc(job, fresh=True)["m"] == 2


_NO_FLOCK = textwrap.dedent(
    """
    import errno, types
    import aexp.joblock

    def flock(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    # What a Lustre client mounted without -o flock answers.
    aexp.joblock.fcntl = types.SimpleNamespace(flock=flock, LOCK_EX=2, LOCK_NB=4)
    """
)


def test_without_flock_the_soft_lock_still_excludes_and_survives_a_killed_holder(
    project, monkeypatch
):
    monkeypatch.setattr(joblock, "fcntl", joblock.fcntl)  # restored after the test
    exec(_NO_FLOCK, {})  # the patch the holder below applies to itself
    job = create_run(experiment_id="E1", hypothesis_id="H1")
    assert _hammer_from_threads(job, updates=25)["n"] == 100

    holder = subprocess.Popen(
        [PYTHON, "-c", _NO_FLOCK + _HOLD, job.id],
        cwd=os.getcwd(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert Path(job.path, ".aexp.lock.filelock").exists()
        monkeypatch.setattr(joblock, "LOCK_TIMEOUT_S", 0.5)
        with pytest.raises(BindingError, match="another process has held its lock"):
            update_doc(job, lambda doc: {"n": 0})
    finally:
        holder.kill()
        holder.wait(timeout=30)
    monkeypatch.setattr(joblock, "LOCK_TIMEOUT_S", 30)
    update_doc(job, lambda doc: {"n": 0})  # the dead holder's lock is taken over
    assert read_doc(job, fresh=True)["n"] == 0


_SHARED_FS = textwrap.dedent(
    """
    import aexp.joblock

    # What a workspace on NFS, Lustre or GPFS gets (or what an older aexp always did).
    aexp.joblock.kernel_local = lambda directory: False
    """
)


def test_the_lock_is_the_job_directory_on_a_local_file_system_and_a_file_on_a_shared_one(
    project, monkeypatch
):
    job = create_run(experiment_id="E1", hypothesis_id="H1")
    if not kernel_local(os.path.dirname(job.path)):
        pytest.skip("the test's directory is not on a local file system")
    monkeypatch.setattr(joblock, "LOCK_TIMEOUT_S", 0.3)
    holder = subprocess.Popen(
        [PYTHON, "-c", _HOLD, job.id], cwd=os.getcwd(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert not Path(job.path, ".aexp.lock").exists(), "no lock file is created per job"
        with pytest.raises(BindingError, match="another process has held its lock"):
            update_doc(job, lambda doc: {"n": 1})
    finally:
        holder.kill()
        holder.wait(timeout=30)

    # A process that locks the file (the workspace seen through NFS, or an older aexp) holds
    # this one off too, however this one locks.
    other = create_run(experiment_id="E1", hypothesis_id="H2")
    holder = subprocess.Popen(
        [PYTHON, "-c", _SHARED_FS + _HOLD, other.id],
        cwd=os.getcwd(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert Path(other.path, ".aexp.lock").exists()
        with pytest.raises(BindingError, match="another process has held its lock"):
            update_doc(other, lambda doc: {"n": 1})
        assert "n" not in read_doc(other, fresh=True)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    monkeypatch.setattr(joblock, "LOCK_TIMEOUT_S", 30)
    monkeypatch.setattr(joblock, "kernel_local", lambda directory: False)
    assert _hammer_from_threads(other, updates=25)["n"] == 100  # threads, through the file


_CLAIM = textwrap.dedent(
    """
    import sys, time
    from aexp import find_job, open_project
    from aexp.joblock import job_claim

    with job_claim(find_job(open_project(), sys.argv[1])):
        print("holding", flush=True)
        time.sleep(600)
    """
)


@contextlib.contextmanager
def _claimed(job, prelude: str = "") -> Iterator[subprocess.Popen]:
    """A process holding the job's claim for the block, killed (SIGKILL: the kernel drops the
    claim, nothing of its own runs) after it."""
    holder = subprocess.Popen(
        [PYTHON, "-c", prelude + _CLAIM, job.id], cwd=os.getcwd(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=30)


def _refused_by(job, holder: subprocess.Popen) -> None:
    from aexp.errors import JobBusyError

    with pytest.raises(JobBusyError) as refused, joblock.job_claim(job):
        pytest.fail("a claim held elsewhere must be refused")
    said = f"job {job.id} is being worked on by another process (pid {holder.pid} on "
    assert str(refused.value).startswith(said), str(refused.value)
    assert joblock.claim_holder(job) == str(refused.value), "looking says what taking says"


def test_a_claim_holds_whatever_happens_to_the_state_point_file(project):
    """The claim is a file of its own: a state point file replaced (`aexp repair`, an editor's
    atomic save), removed, or the job moved to a new id by signac's `update_statepoint` while
    a process holds the claim, and the job is still refused to everybody else."""
    jobs = [create_run(experiment_id="E1", hypothesis_id=f"H{i}") for i in range(3)]
    statepoint = [Path(job.path, "signac_statepoint.json") for job in jobs]
    with _claimed(jobs[0]) as holder:
        text = statepoint[0].read_text()
        statepoint[0].with_suffix(".tmp").write_text(text)
        os.replace(statepoint[0].with_suffix(".tmp"), statepoint[0])  # a new inode
        _refused_by(jobs[0], holder)
    with _claimed(jobs[1]) as holder:
        statepoint[1].unlink()
        _refused_by(jobs[1], holder)
    with _claimed(jobs[2]) as holder:
        moved = open_project().open_job(id=jobs[2].id)
        moved.update_statepoint({"moved": True})
        assert moved.id != jobs[2].id
        _refused_by(moved, holder)
    assert joblock.claim_holder(jobs[0]) is None, "free again once the holder is gone"
    with joblock.job_claim(jobs[0]):
        pass


# -- several `python project.py run` at once (issue 12) ------------------------------------------
MIN_TRIALS, MAX_TRIALS, TRIAL_BUDGET_S = 3, 6, 30.0


def test_concurrent_runs_open_and_close_each_attempt_once(tmp_path: Path) -> None:
    """Four `python project.py run` processes over one W&B offline sweep (a login node, a cron
    job, two terminals), several trials: every job ends finished, and each attempt was opened
    once and closed once: as many `resume_run` as `finish` events in its journal, one finish per
    attempt, one W&B fragment per attempt with an exit record and rows (no extra empty
    fragment). The job's claim (aexp.joblock.job_claim) serialises the operations; each one
    checks the job's state again under it. (`-o run_job`: the attempt's operations; the upload
    needs a server and is another matter.)"""
    pytest.importorskip("wandb")
    from conftest import copy_template

    from aexp.journal import journal_path, read_journal
    from aexp.wandb_offline import find_fragments, read_fragment

    started = time.monotonic()
    trials = shared = 0  # shared: trials in which more than one process executed jobs
    while trials < MAX_TRIALS and (
        trials < MIN_TRIALS or time.monotonic() - started < TRIAL_BUDGET_S
    ):
        root = copy_template(tmp_path / f"trial{trials}")
        project = open_project(root)
        jobs = [
            create_run(
                experiment_id="E018",
                hypothesis_id="H012",
                statepoint={"condition": "full", "seed": seed, "epochs": 3},
                project=project,
            )
            for seed in range(4)
        ]
        procs = [
            subprocess.Popen(
                [PYTHON, "project.py", "run", "-o", "run_job"],
                cwd=root,
                env=dict(os.environ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(WORKERS)
        ]
        counted = 0  # the jobs each process's summary says it finished: each job once in all
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            assert "Traceback" not in err and "failed" not in err, err
            counted += int(re.match(r"run: (\d+) finished", out.splitlines()[-2]).group(1))
        assert counted == len(jobs), trials
        shared += len({read_doc(job)["attempt"]["pid"] for job in jobs}) > 1
        for job in jobs:
            binding = get_binding(job)
            assert binding["state"] == "finished" and binding["closed"], (trials, binding)
            assert binding["attempts"] == 1, (trials, binding)  # executed once, by one process
            journal = read_journal(journal_path(job.path, binding["run_id"]))
            events = [
                json.loads(line)["event"]
                for line in journal_path(job.path, binding["run_id"]).read_text().splitlines()
            ]
            assert events.count("init_run") == 1, (trials, events)
            assert events.count("resume_run") == events.count("finish") == binding["attempts"]
            assert [a.number for a in journal.attempts] == list(range(1, binding["attempts"] + 1))
            fragments = [read_fragment(f) for f in find_fragments(job.path)]
            assert len(fragments) == binding["attempts"], (trials, [f.path for f in fragments])
            for fragment in fragments:
                assert fragment.exit_code == 0 and fragment.first_step is not None, fragment
        trials += 1
    print(
        f"{trials} trials of {WORKERS} concurrent runs in {time.monotonic() - started:.0f} s; "
        f"in {shared} of them the jobs were executed by more than one process"
    )
