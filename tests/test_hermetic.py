"""The suite's own guard: a test may leave nothing outside its temp dir, and is blamed only for
what it wrote itself.

Each test here runs a small pytest session of its own (the suite's conftest.py, a probe test) in
a subprocess whose TMPDIR is a directory of this test, as the README's test command runs on a
machine where other work goes on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import REPO

PROBES = {
    # Writes only inside its own tmp dir, as every test should.
    "clean": "def test_probe(tmp_path):\n    (tmp_path / 'wandb-run.txt').write_text('x')\n",
    # Leaves a file in the session's temporary directory: a leak the guard must name.
    "leaky": (
        "from conftest import SESSION_TMP\n"
        "def test_probe():\n"
        "    (SESSION_TMP / 'wandb-leak').write_text('x')\n"
    ),
}


def _session(tmp_path: Path, probe: str, shared_tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run a probe in a pytest session of its own (the suite's conftest; TMPDIR=shared_tmp)."""
    tests = tmp_path / "suite" / "tests"
    tests.mkdir(parents=True)
    for name in ("conftest.py", "mlflow_server.py"):
        shutil.copy2(REPO / "tests" / name, tests / name)
    source = PROBES[probe]
    if probe == "leaky":  # the leak lands where the session's own TMPDIR points
        source = source.replace(
            "os.environ['AEXP_PROBE_TMP']", "__import__('conftest').SESSION_TMP"
        )
    (tests / "test_probe.py").write_text(source)
    env = {**os.environ, "TMPDIR": str(shared_tmp)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tests.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_files_other_processes_write_into_the_shared_tmpdir_are_not_blamed(tmp_path: Path) -> None:
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    stop = threading.Event()

    def other_work() -> None:  # another wandb process on the machine, writing all along
        n = 0
        while not stop.is_set():
            (shared / f"wandb-{n}").mkdir()
            (shared / f"port-{n}.txt").write_text("1")
            (shared / f"aexp-other-{n}").write_text("1")
            n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=other_work, daemon=True)
    writer.start()
    try:
        result = _session(tmp_path, "clean", shared)
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "left files outside" not in result.stdout + result.stderr
    # The green session removed its own temporary directory; the other process's files stay.
    assert not list(shared.glob("aexp-tests-*"))
    assert list(shared.glob("wandb-*"))


def test_a_test_that_leaves_a_file_outside_its_tmp_dir_is_named(tmp_path: Path) -> None:
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    result = _session(tmp_path, "leaky", shared)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "the test left files outside its tmp dir" in output
    assert "wandb-leak" in output
    # A red session keeps its temporary files for a look, and says where.
    (kept,) = shared.glob("aexp-tests-*")
    assert f"kept in {kept}" in output
