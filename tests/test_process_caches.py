"""What a process keeps between two attempts (who acts, the settings' overrides, the user) is
derived again as soon as what it came from changes: attempts run one after another in one
process (`python project.py run` over a sweep), and each records the environment as it is
when it starts, not as the first one saw it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

import pytest

from aexp import create_run
from aexp.agent.actor import current_actor, person_id, workflow_actor
from aexp.envstamp import env_stamp
from aexp.jobdoc import read_doc
from aexp.settings import Settings, cached_settings
from aexp.usage import Usage
from aexp.workflow import execute


def _trivial(job, tracker) -> None:
    tracker.log({"loss": 1.0})


def _launched_by(seed: int) -> dict:
    """Run one new job through `execute` in this process; the actor its attempt recorded."""
    job = create_run(experiment_id="E1", hypothesis_id="H1", statepoint={"seed": seed})
    settings = Settings(path=None, backend="noop", backends=("noop",), heartbeat_interval=30)
    assert execute(job, _trivial, settings) == "finished"
    return read_doc(job, fresh=True)["actor"]["launch"]


def test_each_attempt_records_the_environment_as_it_is_when_it_starts(
    project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CLAUDE_CODE_SESSION_ID", "AEXP_ACTOR", "SLURM_JOB_ID", "AEXP_SESSION_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "ada")
    first = _launched_by(0)
    assert (first["kind"], first["id"], first["tool"]) == ("person", f"ada@{os.uname()[1]}",
                                                          "python project.py run")  # fmt: skip
    # The login name changes between two attempts: the next one is someone else's.
    monkeypatch.setenv("LOGNAME", "grace")
    assert _launched_by(1)["id"] == f"grace@{os.uname()[1]}"
    # Where no login variable is set, getpass's last resort (USERNAME) counts too.
    for name in ("LOGNAME", "USER", "LNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USERNAME", "hedy")
    assert _launched_by(10)["id"] == f"hedy@{os.uname()[1]}"
    monkeypatch.setenv("USERNAME", "lise")
    assert _launched_by(11)["id"] == f"lise@{os.uname()[1]}"
    monkeypatch.setenv("LOGNAME", "grace")
    # An agent's session appears: the attempt is the agent's, for the same user.
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "s-1")
    agent = _launched_by(2)
    assert (agent["kind"], agent["id"], agent["session_id"]) == ("agent", "claude-code", "s-1")
    assert agent["user"] == f"grace@{os.uname()[1]}"
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "s-2")
    assert _launched_by(3)["session_id"] == "s-2"
    # The session variable the settings name changes (an AEXP_* override): the old one is no
    # longer looked at.
    monkeypatch.setenv("AEXP_SESSION_ENV", "MY_SESSION")
    assert _launched_by(4)["kind"] == "person"
    monkeypatch.setenv("MY_SESSION", "m-1")
    mine = _launched_by(5)
    assert (mine["kind"], mine["id"], mine["session_id"]) == ("agent", "my_session", "m-1")
    # Inside a SLURM job, the tool is `submit`'s; a launcher's actor, handed down, wins.
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert _launched_by(6)["tool"] == "python project.py submit"
    handed = '{"kind": "agent", "id": "mcp-client", "tool": "mcp:run", "user": "u@h"}'
    monkeypatch.setenv("AEXP_ACTOR", handed)
    assert (_launched_by(7)["id"], _launched_by(8)["tool"]) == ("mcp-client", "mcp:run")
    # And back: everything unset again gives the first answer.
    for name in ("CLAUDE_CODE_SESSION_ID", "AEXP_ACTOR", "SLURM_JOB_ID", "AEXP_SESSION_ENV"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("LOGNAME", "ada")
    again = _launched_by(9)
    assert {**again, "at": None, "run_id": None} == {**first, "at": None, "run_id": None}


def test_the_actor_follows_the_projects_settings_file(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AEXP_SESSION_ENV", raising=False)
    monkeypatch.delenv("CLAUDE_CODE_SESSION_ID", raising=False)
    monkeypatch.setenv("OTHER_SESSION", "o-1")
    rc = tmp_path / "signac.rc"
    rc.write_text("[tracker]\nbackend = noop\n")
    assert workflow_actor(tmp_path)["kind"] == "person"
    rc.write_text("[tracker]\nbackend = noop\n\n[agent]\nsession_env = OTHER_SESSION\n")
    actor = workflow_actor(tmp_path)
    assert (actor["kind"], actor["session_id"]) == ("agent", "o-1")
    assert cached_settings(tmp_path).agent.session_env == "OTHER_SESSION"


def test_each_answer_is_a_fresh_object_with_its_own_time(monkeypatch) -> None:
    monkeypatch.delenv("AEXP_ACTOR", raising=False)
    one = current_actor("aexp new-run")
    one["id"] = "changed by a caller"
    two = current_actor("aexp new-run")
    assert two["id"] == person_id() and two is not one
    assert list(two) == ["kind", "id", "session_id", "tool", "at", "user"]


@pytest.mark.parametrize("value", ["x", "", "é ü", "a=b"])
def test_an_environment_stamp_changes_exactly_when_a_value_does(monkeypatch, value) -> None:
    names = ("AEXP_TEST_STAMP_A", "AEXP_TEST_STAMP_B")
    monkeypatch.delenv(names[0], raising=False)
    monkeypatch.delenv(names[1], raising=False)
    unset = env_stamp(names)
    monkeypatch.setenv(names[0], value)
    assert env_stamp(names) != unset  # set, even to "", is not unset
    assert env_stamp(names) == env_stamp(list(names))
    monkeypatch.setenv(names[0], value + "!")
    changed = env_stamp(names)
    monkeypatch.setenv(names[0], value)
    assert env_stamp(names) != changed
    monkeypatch.delenv(names[0])
    assert env_stamp(names) == unset


def test_a_running_child_counts_in_the_peak_and_a_waited_one_no_longer_runs() -> None:
    """The attempt's peak memory sums its running descendants; a process without any skips the
    walk (one system call says so), and is measured as itself alone."""
    usage = Usage.start()
    code = "import time; b = bytearray(b'1') * (120 * 2**20); print(1, flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"1"  # it holds its memory now
        with_child = usage.finish()["peak_rss_mb"]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    alone = Usage.start().finish()["peak_rss_mb"]
    assert with_child - alone >= 110, (with_child, alone)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="clone(2)'s number here is x86-64's")
def test_a_running_clone_child_counts_in_the_peak() -> None:
    """A child whose exit signal is not SIGCHLD (a raw clone(2), as some runtimes start their
    helpers) is a child all the same: the shortcut that skips the walk for a process without
    children must not take it for none."""
    import ctypes
    import signal

    # PyDLL: the call keeps the GIL, so the child starts holding it (a plain CDLL call would
    # release it, and the child could start without it).
    syscall = ctypes.PyDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    read_end, write_end = os.pipe()
    usage = Usage.start()
    pid = syscall(56, 0, 0, 0, 0, 0)  # clone(flags=0): exit signal 0, no SIGCHLD; x86-64's 56
    if pid == 0:  # the child: hold 120 MiB, say so, wait to be killed; never back into pytest
        try:
            held = bytearray(b"1") * (120 * 2**20)
            os.write(write_end, bytes(held[:1]))
            time.sleep(60)
        finally:
            os._exit(0)
    assert pid > 0, ctypes.get_errno()
    try:
        assert os.read(read_end, 1) == b"1"  # it holds its memory now
        with_child = usage.finish()["peak_rss_mb"]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitid(os.P_PID, pid, os.WEXITED | 0x40000000)  # __WALL: reap the clone child
        os.close(read_end)
        os.close(write_end)
    alone = Usage.start().finish()["peak_rss_mb"]
    assert with_child - alone >= 110, (with_child, alone)


def test_fresh_facts_see_a_journal_that_changed_under_the_same_document(project) -> None:
    """`facts_of(fresh=True)` (the pass summary's last look) reads the journal again for a run
    the document does not show ended, though the document itself is unchanged; for one it shows
    ended, or a damaged one, the document alone decides and the answer is the same."""
    from test_attempt import ELSEWHERE, _append, _job, _set

    from aexp.jobdoc import now_iso
    from aexp.workflow.conditions import facts_of

    running = _job(0)
    _append(running, "resume_run", attempt=1, **ELSEWHERE)
    first = facts_of(running)
    assert (first.state, first.mark.ended) == ("running", False)
    _append(running, "finish", exit_code=0, preempted=False, attempt=1)
    assert facts_of(running) is first  # the document did not change: its facts stand
    assert facts_of(running, fresh=True).mark.ended  # a fresh look reads the journal

    ended = _job(1)
    _set(ended, {"status": "complete"}, state="finished", exit_code=0, attempts=1,
         finished_at=now_iso())  # fmt: skip
    _append(ended, "resume_run", attempt=2, **ELSEWHERE)  # the document's word stands
    facts = facts_of(ended)
    assert facts_of(ended, fresh=True) == facts and facts.state == "finished"

    damaged = _job(2)
    _set(damaged, state="no such state")
    assert facts_of(damaged).error and facts_of(damaged, fresh=True).error
