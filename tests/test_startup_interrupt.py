"""A Ctrl-C (SIGINT) or SIGTERM while a command starts, before its door is open, ends it like one
that lands later: at most one line on stderr, never a traceback, exit code 128 + the signal.

Each entry point a user types (`aexp`, `python -m aexp.cli`, `python project.py`, `python
dashboard.py`) runs in a subprocess on a real template project (noop backend, three jobs). The
moment the signal lands is not a guess of time: a `sitecustomize` put on the child's PYTHONPATH
adds an import hook that, when the command first imports a chosen module, tells the test and
waits; the test sends the real signal while the child is held inside that import. Python's own
start (its `site` module, which imports sitecustomize) is before any code of the project and is
not tested: nothing of ours runs there.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import PYTHON, new_runs, noop_template

import aexp.startup
from aexp import door

AEXP = str(Path(sys.executable).parent / "aexp")

# Holds the child at its first import of STARTUP_GATE_MODULE: one byte to the test, then it waits
# for one back (or for the test to close the pipe). A signal lands while it waits, as a signal
# lands in the middle of any import: its Python handler runs there (PEP 475).
SITECUSTOMIZE = """\
import os
import sys


class _Gate:
    module = os.environ["STARTUP_GATE_MODULE"]
    ready, go = (int(fd) for fd in os.environ["STARTUP_GATE_FDS"].split(","))

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == cls.module:
            sys.meta_path.remove(cls)
            os.write(cls.ready, b"1")
            os.read(cls.go, 1)
        return None


sys.meta_path.insert(0, _Gate)
"""

AEXP_STATUS = (AEXP, "status")
M_AEXP_STATUS = (PYTHON, "-m", "aexp.cli", "status")
PROJECT_STATUS = (PYTHON, "project.py", "status")
PROJECT_RUN = (PYTHON, "project.py", "run")
DASHBOARD = (PYTHON, "dashboard.py", "run")

# (command, the module whose first import the signal lands in): from the first import after the
# command's first line, through flow and signac and the user's experiment.py, to the first
# import of the command itself once its door is open.
MOMENTS = [
    (AEXP_STATUS, "aexp.cli"),  # the console script's first import after its first line
    (AEXP_STATUS, "argparse"),
    (AEXP_STATUS, "aexp.cli.status"),
    (AEXP_STATUS, "shutil"),  # argparse's help formatter imports it: the parser is being built
    (AEXP_STATUS, "aexp.jobs"),  # the command runs
    (M_AEXP_STATUS, "argparse"),  # runpy imports the package aexp.cli: its first import
    (M_AEXP_STATUS, "aexp.cli.status"),
    (M_AEXP_STATUS, "aexp.jobs"),
    (PROJECT_STATUS, "aexp.workflow"),  # project.py's first import after its first line
    (PROJECT_STATUS, "signac"),
    (PROJECT_STATUS, "flow.project"),
    (PROJECT_STATUS, "experiment"),
    (PROJECT_RUN, "flow"),
    (PROJECT_RUN, "aexp.workflow.report"),  # `run` has begun
    (DASHBOARD, "aexp.dashboard"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The template with the noop backend and three jobs not run yet, and the gate's folder."""
    base = tmp_path_factory.mktemp("startup")
    root, env = noop_template(base)
    ids = new_runs(root, env, "seed=0..2,epochs=2")
    gate = base / "gate"
    gate.mkdir()
    (gate / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(gate), env.get("PYTHONPATH")) if p)
    return SimpleNamespace(root=root, env={**env, "PYTHONPATH": path}, ids=ids)


def _signalled_at(
    built: SimpleNamespace, command: tuple[str, ...], module: str, signum: int, shell: str = ""
) -> tuple[int, str]:
    """Run `command` in the project, send it `signum` while it first imports `module`, and let
    it go on if the signal did not end it; its exit code (killed by signal n: 128 + n, as a
    shell reports it) and stderr. `shell`: a sh prefix to exec the command with."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    env = {**built.env, "STARTUP_GATE_MODULE": module, "STARTUP_GATE_FDS": f"{ready_w},{go_r}"}
    args = ["sh", "-c", f'{shell} exec "$@"', "sh", *command] if shell else list(command)
    proc = subprocess.Popen(
        args,
        cwd=built.root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=(ready_w, go_r),
    )
    os.close(ready_w)
    os.close(go_r)
    try:
        readable, _, _ = select.select([ready_r], [], [], 120)
        held = bool(readable) and os.read(ready_r, 1) == b"1"
        if held:
            proc.send_signal(signum)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:  # the signal did not end it: let it go on
            os.close(go_w)
            go_w = -1
            _, err = proc.communicate(timeout=120)
    finally:
        os.close(ready_r)
        if go_w >= 0:
            os.close(go_w)
    stderr = err.decode(errors="replace")
    assert held, f"{' '.join(command)} never imported {module}: {stderr}"
    code = proc.returncode
    return (128 - code if code < 0 else code), stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(
    ("command", "module"), MOMENTS, ids=[f"{Path(c[-2]).name}-{c[-1]}@{m}" for c, m in MOMENTS]
)
def test_a_signal_while_a_command_starts_ends_it_in_one_line(
    built: SimpleNamespace, command: tuple[str, ...], module: str, signum: int
) -> None:
    code, stderr = _signalled_at(built, command, module, signum)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert code == 128 + signum, stderr
    if signum == signal.SIGINT:  # the door's own sentence, whether it was open or not
        assert len(lines) == 1 and "interrupted" in lines[0], stderr
    else:  # SIGTERM ends the process at once, as Python's default does
        assert lines == [], stderr


def test_a_ctrl_c_the_parent_ignores_stays_ignored_while_a_command_starts(
    built: SimpleNamespace,
) -> None:
    # A background job of a shell script, or nohup, starts with SIGINT ignored: the startup
    # guard leaves it so, and the command runs to its end.
    code, stderr = _signalled_at(built, AEXP_STATUS, "aexp.cli", signal.SIGINT, "trap '' INT;")
    assert code == door.OK, stderr
    assert "Traceback" not in stderr


def test_the_guard_is_only_for_a_command_and_until_its_door_opens() -> None:
    before = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        aexp.startup.quiet_interrupts("project")  # project.py imported as a module: no guard
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        aexp.startup.quiet_interrupts("__main__")
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        aexp.startup.release_interrupts()  # the door: Ctrl-C is a KeyboardInterrupt again
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored by the parent: left so
        aexp.startup.quiet_interrupts("__main__")
        aexp.startup.release_interrupts()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
