"""Shared fixtures: every test runs hermetically inside its own temp dir.

wandb phones home by default (telemetry, error reporting) and writes to HOME and caches. The
autouse fixture below points HOME, TMPDIR and every W&B directory into the test's tmp_path, sends
W&B's base URL to a closed loopback port and switches its reporting off, so no test reaches a
non-loopback address or leaves files outside its temp dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow_server import make_empty_store, start_server

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# The template's files a user clones (what an end-to-end test copies into its temp dir).
TEMPLATE_FILES = (
    "project.py",
    "experiment.py",
    "signac.rc",
    ".signac",
    "templates",
    "demo.py",
    "dashboard.py",
)
# CI sets this so that tests needing SLURM fail instead of skipping when it is missing.
REQUIRE_SLURM = os.environ.get("AEXP_REQUIRE_SLURM") == "1"
# The marks of a test module that drives the real wandb client: `pytestmark = NEEDS_WANDB`.
NEEDS_WANDB = [
    pytest.mark.wandb,
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("wandb") is None, reason="needs wandb"
    ),
]
# A loopback port nothing listens on: any stray W&B request fails at once, locally.
CLOSED_URL = "http://127.0.0.1:9"


def hermetic_env(root: Path, base_url: str = CLOSED_URL) -> dict[str, str]:
    """os.environ plus the variables that keep aexp and wandb inside `root` and off the network."""
    home, tmp = root / "home", root / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WANDB_", "AEXP_", "SLURM_", "SIGNAC_", "MLFLOW_"))
    }
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        # MLflow 3 sends usage telemetry by default; nothing leaves the machine in a test.
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        WANDB_BASE_URL=base_url,
        WANDB_ERROR_REPORTING="false",
        WANDB__DISABLE_STATS="true",
        WANDB_SILENT="true",
        WANDB_DIR=str(tmp / "wandb"),
        WANDB_CONFIG_DIR=str(home / ".config" / "wandb"),
        WANDB_CACHE_DIR=str(home / ".cache" / "wandb"),
        WANDB_DATA_DIR=str(home / ".local" / "share" / "wandb"),
        WANDB_ARTIFACT_DIR=str(tmp / "artifacts"),
        PYTHONDONTWRITEBYTECODE="1",
        # flow picks SLURM whenever sbatch exists; tests that want it ask for it explicitly.
        SIGNAC_FLOW_ENVIRONMENT="StandardEnvironment",
    )
    return env


# Where files outside every test's tmp dir would land: the repository (a test that forgot its
# own directory) and this session's own temporary directory. The session gets a private one
# (TMPDIR for this process and everything it starts; pytest's tmp_path lives inside it): a
# machine's shared temporary directory also holds what other processes write there (another
# wandb run, another test session), which no test of this session may be blamed for. Python's
# `tempfile` caches the first TMPDIR it sees for the whole process, so code in this process (the
# in-process wandb-core's port file, say) writes where the cache points: `_hermetic` points it at
# the test's tmp dir too.
REAL_TMP = Path(tempfile.gettempdir())
SESSION_TMP = Path(tempfile.mkdtemp(prefix="aexp-tests-", dir=REAL_TMP))
os.environ["TMPDIR"] = str(SESSION_TMP)
tempfile.tempdir = str(SESSION_TMP)
# pytest's tmp_path tree, short: a test's TMPDIR holds unix sockets (chromium's singleton socket,
# wandb's service), whose paths may not exceed 107 bytes.
BASETEMP = SESSION_TMP / "t"
_IGNORED_IN_REPO = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_IGNORED_IN_SESSION = (BASETEMP.name,)
# wandb makes two temporary directories when it is first imported in a process and removes
# them when the process exits (wandb/sdk/data_types/_private.py, sdk/artifacts/artifact.py):
# made by an import outside any test, they are this session's own and gone once it ends.
_PROCESS_LIFETIME = re.compile(r"tmp[a-z0-9_]{8}wandb-(media|artifacts)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.option.basetemp:  # before pytest's own tmp_path factory reads it
        config.option.basetemp = str(BASETEMP)


def outside_files() -> set[str]:
    """What lies where no test may leave anything: the repository's top level, its workspace,
    tests and bench directories, and this session's private temporary directory (but for the
    tests' own tmp dirs in it)."""
    found = set()
    for where in (REPO, REPO / "workspace", REPO / "tests", REPO / "bench"):
        with contextlib.suppress(OSError):
            found |= {f"{where}/{n}" for n in os.listdir(where) if n not in _IGNORED_IN_REPO}
    with contextlib.suppress(OSError):
        found |= {
            f"{SESSION_TMP}/{n}"
            for n in os.listdir(SESSION_TMP)
            if n not in _IGNORED_IN_SESSION and not _PROCESS_LIFETIME.fullmatch(n)
        }
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_OUTSIDE] = outside_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_OUTSIDE, None)
    if before is None:
        return
    left = sorted(outside_files() - before)
    if left:  # a module fixture or a process that outlived its test
        print(f"\nerror: the tests left files outside their tmp dirs: {left}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if session.exitstatus == pytest.ExitCode.OK:
        # A green session leaves nothing behind; a red one keeps its tmp dirs to look at.
        shutil.rmtree(SESSION_TMP, ignore_errors=True)
    else:
        print(f"\nthe tests' temporary files are kept in {SESSION_TMP}", file=sys.stderr)


_OUTSIDE = pytest.StashKey[set[str]]()


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith(("WANDB_", "AEXP_", "SLURM_", "SIGNAC_", "MLFLOW_")):
            monkeypatch.delenv(key)
    for key, value in hermetic_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    before = outside_files()
    yield
    left = sorted(outside_files() - before)
    if left:
        pytest.fail(f"the test left files outside its tmp dir: {left}")


@pytest.fixture
def slurm() -> None:
    """Skip (or, in CI, fail) unless a SLURM cluster answers on this machine."""
    ok = shutil.which("sbatch") is not None and (
        subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0
    )
    if not ok:
        reason = "no SLURM cluster on this machine (sbatch/sinfo missing or not answering)"
        if REQUIRE_SLURM:
            pytest.fail(f"{reason}, but AEXP_REQUIRE_SLURM=1")
        pytest.skip(reason)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty signac project in tmp_path/project, with the current directory inside it."""
    import signac

    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return signac.init_project(root)


def copy_template(root: Path) -> Path:
    """Copy the template a user clones (TEMPLATE_FILES) into the new directory `root`."""
    root.mkdir()
    for name in TEMPLATE_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name)
        elif src.exists():
            shutil.copy2(src, root / name)
    (root / "workspace").mkdir(exist_ok=True)
    return root


def noop_template(base: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the template in `base/template` on the noop backend (no network, no tracker's
    own timing), and a hermetic environment kept in `base` for the commands run on it."""
    root = copy_template(base / "template")
    set_rc(root, "tracker", "backend", "noop")
    return root, hermetic_env(base)


def snapshot(root: Path) -> dict[str, str]:
    """Every file (content hash), directory and symlink under `root`: compare to prove no change."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            state[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            state[rel] = "dir"
        else:
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the template (project.py, experiment.py, signac.rc, ...) in tmp_path."""
    root = copy_template(tmp_path / "template")
    monkeypatch.chdir(root)
    return root


def run_cmd(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command with the hermetic environment of the current test; output captured."""
    result = subprocess.run(
        args,
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result


def new_runs(root: Path, env: dict[str, str], sp: str, timeout: float = 300) -> list[str]:
    """`aexp new-run --experiment E1 --hypothesis H1 --sp SP` in `root`: the new jobs' ids."""
    args = ["new-run", "--experiment", "E1", "--hypothesis", "H1", "--sp", sp]
    made = run_cmd([PYTHON, "-m", "aexp.cli", *args], root, env, timeout, check=True)
    return made.stdout.split()


def settled_log(folder: Path, timeout: float = 60.0) -> Path:
    """The `run-<id>.wandb` of an offline run folder once it holds its exit record.

    wandb's `run.finish()` returns when wandb-core has handled the exit, and wandb-core writes the
    rest of the transaction log's last block when its stream closes, just after: a reader that
    looks at once can see the file without its last records (seen on a loaded machine). This
    waits for the record that ends every closed run, for at most `timeout` seconds.
    """
    import time

    from aexp.wandb_offline import read_fragment

    deadline = time.monotonic() + timeout
    while True:
        (log,) = folder.glob("run-*.wandb")
        if read_fragment(folder).exited or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def preempt_attempt(
    root: Path,
    env: dict[str, str],
    job_id: str,
    after_step: int,
    args: tuple[str, ...] = ("exec", "execute"),
    timeout: float = 300,
) -> None:
    """Run one attempt of `job_id` (`python project.py <args> <job_id>`) and send it SIGTERM, as
    SLURM's warning signal would, once its binding records `after_step`; it must end preempted
    (exit code 128 + SIGTERM)."""
    import json
    import signal
    import time

    document = root / "workspace" / job_id / "signac_job_document.json"
    proc = subprocess.Popen(
        [PYTHON, "project.py", *args, job_id],
        cwd=root,
        env={**env, "AEXP_HEARTBEAT": "0.2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while (json.loads(document.read_text()).get("tracker") or {}).get(
            "last_step", -1
        ) < after_step:
            assert time.monotonic() < deadline, "the attempt never got going"
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=timeout) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def set_rc(root: Path, section: str, key: str, value: str) -> None:
    """Set one key of the template's signac.rc in place (configparser round trip)."""
    import configparser

    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    path = root / "signac.rc"
    parser.read(path)
    if not parser.has_section(section):
        parser.add_section(section)
    parser.set(section, key, value)
    with open(path, "w") as fh:
        parser.write(fh)


# -- MLflow: an empty store to copy, and one real tracking server for the whole session ----------
@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mlflow-template")
    return make_empty_store(root / "empty.db", root)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, empty_store: Path):
    started = start_server(tmp_path_factory.mktemp("mlflow-server"), template=empty_store)
    print(f"\nmlflow server answered /health after {started.started_in:.1f} s", file=sys.stderr)
    yield started
    started.stop()
