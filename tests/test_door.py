"""One door: `python project.py`, `aexp` and `python dashboard.py` answer bad input and damaged
state in one sentence, with the exit code of aexp.door's table, never a traceback; a job whose
state point cannot be read is repaired from its journal, never named for removal, and every
command goes on with the other jobs meanwhile.

Every case runs the real entry point in a subprocess (as a user types it) on a real project: the
template, the noop backend, a sweep of 17 jobs (two of them share a first hex digit, so an
ambiguous prefix exists), three of them run. A terminal is a real pseudo-terminal (`pty`).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import PYTHON, copy_template, hermetic_env, run_cmd, set_rc, snapshot

AEXP = shutil.which("aexp", path=str(Path(sys.executable).parent)) or str(
    Path(sys.executable).parent / "aexp"
)
SP = "signac_statepoint.json"
# flow's progress bars on stderr ("Fetching status: 100%|####| 10/10 [00:00<00:00, 9.8it/s]");
# a line printed while one is drawn ends up on the bar's line, after it.
_BAR = re.compile(r"[A-Za-z ]+:\s+\d+%\|[^|]*\|[^\]]*\]")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The sweep every case copies: 17 jobs, the first three run to the end."""
    base = tmp_path_factory.mktemp("door")
    root = copy_template(base / "template")
    env = hermetic_env(base)
    set_rc(root, "tracker", "backend", "noop")
    made = run_cmd(
        [AEXP, "new-run", "--experiment", "E1", "--hypothesis", "H1", "--sp", "seed=0..16",
         "--sp", "epochs=2"],
        cwd=root, env=env, check=True,
    )  # fmt: skip
    ids = made.stdout.split()
    run_cmd([PYTHON, "project.py", "run", "-j", *ids[:3]], cwd=root, env=env, check=True)
    return SimpleNamespace(root=root, env=env, ids=ids, done=ids[:3], todo=ids[3:])


@pytest.fixture
def sweep(built: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """A copy of the built sweep for one test, with its own hermetic environment."""
    root = tmp_path / "project"
    shutil.copytree(built.root, root, symlinks=True)
    return SimpleNamespace(root=root, env=dict(os.environ), ids=built.ids, done=built.done,
                           todo=built.todo)  # fmt: skip


def lines(text: str) -> list[str]:
    """The non-empty lines of an output, flow's progress bars taken out."""
    return [x.strip() for x in _BAR.sub("\n", text).splitlines() if x.strip()]


def call(entry: str, args: list[str], root: Path, env: dict, cwd: Path | None = None, **kw):
    """Run `entry` (project.py, dashboard.py: the project's own files; aexp: the console
    script) with `args`."""
    command = [AEXP] if entry == "aexp" else [PYTHON, str(root / entry)]
    return run_cmd([*command, *args], cwd=cwd or root, env=env, **kw)


def one_line(result: subprocess.CompletedProcess) -> str:
    """The one line a refused command says; nothing else, no traceback."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    said = lines(result.stderr)
    assert len(said) == 1, said
    return said[0]


# -- every door case ---------------------------------------------------------------------------
def _no_project(root: Path) -> None:
    shutil.rmtree(root / ".signac")


def _rc(section: str, key: str, value: str) -> Callable[[Path], None]:
    return lambda root: set_rc(root, section, key, value)


def _document(text: str) -> Callable[[Path], None]:
    """Replace the document of the first finished job ({done}) with `text`."""

    def damage(root: Path) -> None:
        done = sorted(p for p in (root / "workspace").glob("*/result.json"))[0].parent
        (done / "signac_job_document.json").write_text(text)

    return damage


# (id, entry point, arguments, setup, exit code, the start of the one line, a fragment of it).
# {job} is a job of the sweep, {prefix} a prefix two jobs share.
DOOR = [
    # unknown job ids: refused before anything runs
    ("run -j unknown", "project.py", "run -j deadbeef", None,
     2, "error: no job with id", "'deadbeef'"),
    ("status -j unknown", "project.py", "status -j 0badc0de", None,
     2, "error: no job with id", "status -d lists"),
    ("exec execute unknown", "project.py", "exec execute deadbeef", None,
     2, "error: no job with id", "'deadbeef'"),
    ("exec finish unknown", "project.py", "exec finish 0123456789abcdef0123456789abcdef", None,
     2, "error: no job with id", "0123456789abcdef"),
    ("submit -j unknown", "project.py", "submit --pretend -j feedface", None,
     2, "error: no job with id", "'feedface'"),
    ("run -j ambiguous", "project.py", "run -j {prefix}", None,
     2, "error: job id prefix", "give more characters"),
    ("aexp show unknown", "aexp", "show deadbeef", None,
     2, "aexp: error: no job or tracker run", "'deadbeef'"),
    ("aexp rearm unknown", "aexp", "rearm 0badc0de", None,
     2, "aexp: error: no job or tracker run", "'0badc0de'"),
    # unknown operations: refused before anything runs
    ("run -o unknown", "project.py", "run -o nosuchop", None,
     2, "error: unknown operation 'nosuchop'", "operations: execute, finish"),
    ("run -o misspelt", "project.py", "run -o exeucte", None,
     2, "error: unknown operation", "(did you mean execute?)"),
    ("run -o [", "project.py", "run -o [", None,
     2, "error: operation '['", "not a valid name or regular expression"),
    ("run -o execute(", "project.py", "run -o execute(", None,
     2, "error: operation 'execute('", "missing ), unterminated subpattern"),
    ("status -o unknown", "project.py", "status -o nosuch", None,
     2, "error: unknown operation 'nosuch'", "operations:"),
    ("submit -o unknown", "project.py", "submit --pretend -o nope", None,
     2, "error: unknown operation 'nope'", "operations:"),
    ("next unknown", "project.py", "next nosuch", None,
     2, "error: unknown operation 'nosuch'", "operations:"),
    ("exec unknown", "project.py", "exec nosuch {job}", None,
     2, "error: unknown operation 'nosuch'", "operations:"),
    # misspelt commands and options
    ("project.py misspelt command", "project.py", "stauts", None,
     2, "error: unknown command 'stauts'", "(did you mean status?)"),
    ("project.py misspelt option", "project.py", "run --parallell 2", None,
     2, "error: unknown option --parallell", "(did you mean --parallel?)"),
    ("project.py bad value", "project.py", "run -p two", None,
     2, "error: argument -p/--parallel", "invalid int value"),
    ("project.py no workers", "project.py", "run -p 0", None,
     2, "error: -p/--parallel 0 runs nothing", "-p alone for one per core"),
    ("project.py no time", "project.py", "run -t 0", None,
     2, "error: -t/--timeout 0 is no time limit", "leave -t out for no limit"),
    ("project.py nan time", "project.py", "run -t nan", None,
     2, "error: -t/--timeout nan is no time limit", "leave -t out for no limit"),
    ("project.py endless time", "project.py", "run -t inf", None,
     2, "error: -t/--timeout inf is no time limit", "leave -t out for no limit"),
    ("project.py no command", "project.py", "", None,
     2, "error: no command given", "commands: status, next, run"),
    ("aexp misspelt option", "aexp", "new-run --hypotesis H1 --experiment E1", None,
     2, "aexp: error: unknown option --hypotesis", "(did you mean --hypothesis?)"),
    ("aexp misspelt command", "aexp", "rnus", None,
     2, "aexp: error: unknown command 'rnus'", "(did you mean runs?)"),
    ("dashboard.py misspelt command", "dashboard.py", "rnu", None,
     2, "error: unknown command 'rnu'", "(did you mean run?)"),
    ("dashboard.py misspelt option", "dashboard.py", "run --prot 9", None,
     2, "error: unknown option --prot", "(did you mean --port?)"),
    ("dashboard.py bad value", "dashboard.py", "run --port x", None,
     2, "error: argument --port", "invalid int value"),
    ("dashboard.py no port", "dashboard.py", "run --port 99999", None,
     2, "error: argument --port", "99999 is not a port: give one from 1 to 65535"),
    ("aexp bad state", "aexp", "runs --state bogus", None,
     2, "aexp: error: argument --state: unknown state 'bogus'", "known states: bound"),
    ("aexp repair unknown", "aexp", "repair deadbeef", None,
     2, "aexp: error: job id 'deadbeef' matches no job", "workspace"),
    # no project
    ("project.py without a project", "project.py", "status", _no_project,
     2, "error: no signac project at or above", "has a .signac/config"),
    ("project.py run without a project", "project.py", "run", _no_project,
     2, "error: no signac project at or above", "has a .signac/config"),
    ("aexp without a project", "aexp", "runs", _no_project,
     2, "aexp: error: no signac project at or above", "has a .signac/config"),
    ("dashboard.py without a project", "dashboard.py", "run", _no_project,
     2, "error: no signac project at or above", "has a .signac/config"),
    # a job named whose document cannot be read: refused as `aexp show` refuses it
    ("exec a broken document", "project.py", "exec execute {done}", _document('{"tracker": {'),
     2, "error: job ", "is not valid JSON; restore it (or mend it by hand)"),
    ("run -j a broken document", "project.py", "run -j {done}", _document("[1, 2]"),
     2, "error: job ", "is not a JSON object"),
    ("status -j a damaged document", "project.py", "status -j {done}", _document('{"status": 5}'),
     2, "error: job ", "job.doc['status'] is 5"),
    ("aexp show a broken document", "aexp", "show {done}", _document(""),
     2, "aexp: error: job ", "is not valid JSON"),
    # settings: the same code from every entry point
    ("rc value (project.py status)", "project.py", "status", _rc("workflow", "stale_after", "soon"),
     2, "error: [workflow] stale_after", "must be a number"),
    ("rc value (project.py run)", "project.py", "run", _rc("workflow", "stale_after", "soon"),
     2, "error: [workflow] stale_after", "must be a number"),
    ("rc value (aexp runs)", "aexp", "runs", _rc("workflow", "stale_after", "soon"),
     2, "aexp: error: [workflow] stale_after", "must be a number"),
    ("rc value (dashboard.py)", "dashboard.py", "run", _rc("dashboard", "max_rows", "many"),
     2, "error: [dashboard] max_rows", "many"),
    ("rc backend (project.py)", "project.py", "status", _rc("tracker", "backend", "comet"),
     2, "error: ", "comet"),
    ("rc backend (aexp)", "aexp", "runs", _rc("tracker", "backend", "comet"),
     2, "aexp: error: ", "comet"),
    ("rc sync workers (project.py)", "project.py", "run", _rc("sync", "workers", "0"),
     2, "error: [sync] workers", "0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "args", "setup", "code", "start", "fragment"),
    [case[1:] for case in DOOR],
    ids=[case[0] for case in DOOR],
)
def test_every_door_case_is_one_sentence_and_its_exit_code(
    sweep: SimpleNamespace, entry, args, setup, code, start, fragment
) -> None:
    prefix = next(a[:1] for a in sweep.ids if sum(b.startswith(a[:1]) for b in sweep.ids) > 1)
    done = sorted(sweep.done)[0]  # the one _document damages
    assert (sweep.root / "workspace" / done / "result.json").exists()
    args = args.format(job=sweep.todo[0], prefix=prefix, done=done).split()
    if setup is not None:
        setup(sweep.root)
    before = snapshot(sweep.root)
    result = call(entry, args, sweep.root, sweep.env)
    line = one_line(result)
    assert result.returncode == code, (result.returncode, line)
    assert line.startswith(start) and fragment in line, line
    assert result.stdout == "", result.stdout
    assert snapshot(sweep.root) == before, "a refused command changed the project"


def test_project_py_finds_its_project_from_anywhere(sweep: SimpleNamespace, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    status = call("project.py", ["status", "-d"], sweep.root, sweep.env, cwd=elsewhere)
    assert status.returncode == 0, status.stderr
    assert all(job in status.stdout for job in sweep.ids)
    job = sweep.todo[0]
    run = call("project.py", ["run", "-j", job[:10]], sweep.root, sweep.env, cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-2].startswith("run: 1 finished, 0 failed")
    assert not list(elsewhere.iterdir()), "nothing is written where it was run from"


@pytest.mark.parametrize(
    "runner",
    [
        ["-m", "cProfile", "-o", "{out}/profile"],  # a researcher profiling a sweep
        ["-m", "trace", "--count", "--missing", "--coverdir", "{out}/cover", "--summary"],
        ["-m", "pdb", "-c", "continue"],
    ],
)
def test_project_py_finds_its_project_when_a_runner_runs_it(
    sweep: SimpleNamespace, tmp_path: Path, runner: list[str]
) -> None:
    """Under `python -m cProfile project.py ...`, `__main__` is the runner's module: the
    project is still found from project.py's own folder, and the command does what it says."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = [arg.format(out=tmp_path) for arg in runner]
    job = sweep.todo[0]
    command = [PYTHON, *args, str(sweep.root / "project.py"), "run", "-j", job[:10]]
    run = run_cmd(command, cwd=elsewhere, env=sweep.env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "run: 1 finished, 0 failed" in run.stdout, run.stdout[-2000:]
    assert not list(elsewhere.iterdir()), "nothing is written where it was run from"


def test_an_unknown_operation_runs_nothing(sweep: SimpleNamespace) -> None:
    """flow alone prints "Unrecognized flow operation(s)" and runs a whole pass, exit 0."""
    before = snapshot(sweep.root / "workspace")
    for pattern in ("nosuchop", "execute|nosuch(", "init_trackers"):
        result = call("project.py", ["run", "-o", pattern], sweep.root, sweep.env)
        assert result.returncode == 2, result.stderr
        assert snapshot(sweep.root / "workspace") == before, pattern


@pytest.mark.parametrize(
    ("where", "became"),
    [("seed=True", "'True'"), ("seed=1;epochs=2", "'1;epochs=2'"), ("seed=None", "'None'")],
)
def test_a_where_value_probably_meant_otherwise_is_said(
    sweep: SimpleNamespace, where: str, became: str
) -> None:
    result = call("aexp", ["runs", "--where", where, "-q"], sweep.root, sweep.env)
    assert result.returncode == 0 and result.stdout == "", result.stderr
    (line,) = lines(result.stderr)
    assert line.startswith("aexp: warning: ") and f"{where} became the string {became}" in line


# -- a file system that refuses writes -----------------------------------------------------------
def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def on_small_fs(built: SimpleNamespace, tmp_path: Path):
    """A copy of the sweep on a 4 MiB tmpfs of its own (root and mount(8) needed)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    root = tmp_path / "project"
    root.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(root)):
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        shutil.copytree(built.root, root, symlinks=True, dirs_exist_ok=True)
        (root / "signac_project_document.json").unlink(missing_ok=True)  # `status` writes it
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


# An empty file's content hash (conftest.snapshot): what a full disk still lets be created.
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _fill(root: Path) -> None:
    free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    (root / "ballast").write_bytes(b"\0" * free)


# (entry, arguments): every one of them writes something to the project.
WRITERS = [
    ("project.py", "status"),
    ("project.py", "run"),
    ("project.py", "exec execute {job}"),
    ("aexp", "bind-tracker {job}"),
    ("aexp", "new-run --experiment E2 --hypothesis H1 --sp seed=1"),
    ("dashboard.py", "run"),
]


@pytest.mark.parametrize("refusal", ["read-only", "full"])
def test_a_file_system_that_refuses_writes_is_one_sentence(
    on_small_fs: Path, built: SimpleNamespace, refusal: str
) -> None:
    if refusal == "read-only":
        assert _mount("-o", "remount,ro", str(on_small_fs))
        said = "is read-only"
    else:
        _fill(on_small_fs)
        said = "is full"
    before = snapshot(on_small_fs)
    for entry, args in WRITERS:
        args = args.format(job=built.todo[0], done=built.done[0]).split()
        result = call(entry, args, on_small_fs, dict(os.environ))
        line = one_line(result)
        assert result.returncode == 1, (entry, args, line)
        assert line.startswith(("error: the ", "aexp: error: the ")) and said in line, line
        assert "free space" in line, line
        after = snapshot(on_small_fs)
        assert {k: after.get(k) for k in before} == before, (entry, args)  # nothing changed
        new = {k: v for k, v in after.items() if k not in before}
        assert set(new.values()) <= {"dir", EMPTY}, new  # at most empty bookkeeping files
    status = call("aexp", ["runs", "--state", "finished", "-q"], on_small_fs, dict(os.environ))
    assert status.returncode == 0 and status.stdout.split() == sorted(built.done)


# -- a damaged job: repaired, never deleted; the others go on ------------------------------------
DAMAGE = {
    "deleted": lambda p: p.unlink(),
    "empty": lambda p: p.write_text(""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "edited": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "seed": 99})),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_finished_job_is_repaired_and_the_others_go_on(
    sweep: SimpleNamespace, damage: str
) -> None:
    root, env = sweep.root, sweep.env
    job = sweep.done[0]
    path = root / "workspace" / job
    original = json.loads((path / SP).read_text())
    kept = {k: v for k, v in snapshot(path).items() if k != SP}
    DAMAGE[damage](path / SP)
    repair = f"aexp repair {job}"
    others = [j for j in sweep.ids if j != job]

    # Every command goes on with the other jobs, names the repair once, and advises no removal.
    for entry, args, code in [
        ("project.py", ["status", "-d"], 0),
        ("project.py", ["status", "-d", "-p", "seed"], 0),
        ("project.py", ["run", "-f", "seed", "1"], 1),  # a job the filter could not read
        ("project.py", ["run", "-j", *sweep.todo[:2]], None),  # 1 once flow lists the job
        ("aexp", ["runs"], 0),
        ("aexp", ["show", others[0]], 0),
    ]:
        result = call(entry, args, root, env)
        assert code is None or result.returncode == code, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        assert "rm -r" not in result.stderr + result.stdout, result.stderr
        said = [x for x in lines(result.stderr) if job in x]
        assert len(said) <= 1 and all(repair in x for x in said), (args, said)
        # Said where the state point is read: `-p`, `-f`, the results (which do not hash it:
        # an edited one is read as it stands); and by every listing where it is missing or
        # empty (`show` of another job lists nothing).
        reads = "-p" in args or "-f" in args or (args == ["runs"] and damage != "edited")
        if reads or (damage in ("deleted", "empty") and args[0] != "show"):
            assert len(said) == 1, (args, result.stderr)
        if args[0] in ("status", "runs"):
            assert all(other in result.stdout for other in others), args
        if args[:2] == ["run", "-j"]:
            assert result.stdout.splitlines()[-2].startswith("run: 2 finished"), result.stdout
    assert {k: v for k, v in snapshot(path).items() if k != SP} == kept, "the job was touched"

    # Named on its own, it is one sentence naming the repair (exit 2: nothing was done).
    for entry, args in [("project.py", ["exec", "execute", job]), ("aexp", ["show", job])]:
        result = call(entry, args, root, env)
        assert result.returncode == 2 and one_line(result).endswith(repair), result.stderr

    repaired = call("aexp", ["repair", job[:8]], root, env)
    assert repaired.returncode == 0, repaired.stderr
    assert json.loads((path / SP).read_text()) == original
    assert {k: v for k, v in snapshot(path).items() if k != SP} == kept
    status = call("project.py", ["status", "-d"], root, env)
    assert status.returncode == 0 and job in status.stdout
    assert not [x for x in lines(status.stderr) if job in x]
    runs = json.loads(call("aexp", ["runs", "--json"], root, env).stdout)
    assert {r["job_id"]: r["state"] for r in runs["jobs"]}[job] == "finished"


def test_a_directory_that_holds_nothing_may_be_named_for_removal(sweep: SimpleNamespace) -> None:
    empty = sweep.root / "workspace" / ("0" * 32)
    empty.mkdir()
    (empty / SP).write_text("")
    result = call("project.py", ["status"], sweep.root, sweep.env)
    assert result.returncode == 0
    (line,) = [x for x in lines(result.stderr) if str(empty) in x]
    assert line.endswith(f"remove it with rm -r {empty}")


def test_the_dashboard_starts_and_shows_the_other_jobs(sweep: SimpleNamespace) -> None:
    pytest.importorskip("signac_dashboard")
    job = sweep.done[0]
    DAMAGE["truncated"](sweep.root / "workspace" / job / SP)
    with socket_port() as port:
        server = subprocess.Popen(
            [PYTHON, "dashboard.py", "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=sweep.root,
            env=sweep.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        said, login = [], None
        deadline = time.monotonic() + 60
        while login is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line or server.poll() is None, "the dashboard did not start:\n" + "".join(said)
            said.append(line)
            found = re.search(r"(http://\S+/login\?token=[0-9a-f]+)", line)
            login = found.group(1) if found else None
        assert login, "".join(said)
        warned = [x for x in said if job in x]
        assert len(warned) == 1 and f"aexp repair {job}" in warned[0], said
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = None
        while page is None:  # the URL is printed just before the server listens
            try:
                page = opener.open(login, timeout=60).read().decode()
            except urllib.error.URLError:
                assert time.monotonic() < deadline and server.poll() is None, "".join(said)
                time.sleep(0.2)
        shown = set(re.findall(r'data-job="([0-9a-f]{32})"', page))
        assert shown == set(sweep.ids) - {job}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class socket_port:
    """A free loopback port (the socket is closed when the block starts the server)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        return None


# -- the door's own offer, on a terminal ---------------------------------------------------------
def on_terminal(args: list[str], cwd: Path, env: dict, answer: str, timeout: float = 120):
    """Run `args` with a pseudo-terminal as stdin, stdout and stderr; answer the first `[Y/n]`
    prompt with `answer`. Returns (exit code, everything it printed)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the other end closed: the process ended
                    break
                if not chunk:
                    break
                out += chunk
                if not answered and b"[Y/n]" in out:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, out.decode(errors="replace")


@pytest.mark.parametrize("answer", ["y", "n"])
def test_on_a_terminal_the_door_offers_the_repair(sweep: SimpleNamespace, answer: str) -> None:
    job = sweep.done[1]
    sp = sweep.root / "workspace" / job / SP
    original = sp.read_text()
    DAMAGE["truncated"](sp)
    code, said = on_terminal(
        [PYTHON, "project.py", "status", "-d", "-p", "seed"], sweep.root, sweep.env, answer
    )
    assert "Traceback" not in said and "rm -r" not in said, said
    assert "Rebuild this job's state point from the runs' journals now? [Y/n]" in said, said
    assert code == 0, said  # a declined prompt too
    if answer == "y":
        assert sp.read_text() == original
        assert "its state point is rebuilt from its journal" in said
    else:
        assert sp.read_text() != original
        assert f"aexp repair {job}" in said
    assert all(other in said for other in sweep.ids if other != job)


# -- a signal Python cannot raise where it lands ------------------------------------------------
class _Referent:
    pass


def _unraisable(exc: BaseException) -> None:
    """Raise `exc` where Python cannot pass it on: in a weakref callback (importlib's module
    locks use one: a Ctrl-C landing there was printed as "Exception ignored" and lost)."""

    def callback(ref: object) -> None:
        raise exc

    thing = _Referent()
    ref = weakref.ref(thing, callback)
    del thing
    assert ref() is None


@pytest.mark.parametrize("kind", ["ctrl-c", "sigterm"])
def test_an_interrupt_landing_where_python_cannot_raise_it_is_delivered_again(
    monkeypatch, capsys, kind: str
) -> None:
    from aexp import door
    from aexp.sync.interrupts import _Terminated, terminate_cleanly

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # restored after the test
    door.keep_interrupts()
    if kind == "ctrl-c":
        with pytest.raises(KeyboardInterrupt):
            _unraisable(KeyboardInterrupt())
            time.sleep(5)  # the signal comes again, and its handler runs here
    else:
        with pytest.raises(SystemExit) as ended, terminate_cleanly():
            _unraisable(_Terminated(signal.SIGTERM))
            time.sleep(5)
        assert ended.value.code == 128 + signal.SIGTERM
    assert "Exception ignored" not in capsys.readouterr().err


def test_an_error_where_python_cannot_raise_it_is_still_reported(monkeypatch, capsys) -> None:
    from aexp import door

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    door.keep_interrupts()
    _unraisable(ValueError("a bug in a finalizer"))
    err = capsys.readouterr().err
    assert "Exception ignored" in err and "a bug in a finalizer" in err
