"""The `aexp` command line, run as the installed console script on real projects in temp dirs.

Every test calls the `aexp` script of this interpreter's environment in a subprocess (as a user
would), except the unit tests of the `--sp` grammar and of the offline W&B reader, which call the
functions. A module-scoped project (`sweep`) is built once with real signac and the real wandb
client in offline mode; tests that change it work on a copy.

Network: nothing here reaches the network. W&B's base URL is a closed loopback port (conftest's
hermetic environment). The one test of `list-runs --online` replaces W&B's cloud API (`wandb.Api`)
with a stand-in, since no W&B server runs here: that API is the only thing mocked.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import hermetic_env, snapshot

import aexp.cli as aexp_cli
import aexp.sync
from aexp.cli import MAX_SWEEP, UsageError, parse_sp

AEXP = shutil.which("aexp", path=str(Path(sys.executable).parent)) or str(
    Path(sys.executable).parent / "aexp"
)
SIGNAC = str(Path(sys.executable).parent / "signac")


def aexp(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None):
    """Run the installed `aexp` script; returns the CompletedProcess (text, output captured)."""
    return subprocess.run(
        [AEXP, *args],
        cwd=cwd,
        env=env if env is not None else dict(os.environ),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(result: subprocess.CompletedProcess, fragment: str) -> str:
    """Assert the one-sentence bad-input contract and return the message."""
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aexp: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert fragment in lines[0], lines[0]
    return lines[0]


# -- a project with jobs in every state, built once --------------------------------------------
RC = """\
[tracker]
backend = noop
project = demo
offline = true
tags = sweep
"""

# Runs attempts through the library (the workflow's execute/finish do the same), so the CLI has
# real runs to show: noop event logs and W&B offline folders written by the real wandb client.
EXECUTE = """\
import sys
import aexp
from aexp.lifecycle import Preempted, finish_run, run_lifecycle

project = aexp.open_project()
for spec in sys.argv[1:]:
    job_id, mode = spec.split(":")
    job = project.open_job(id=job_id)
    if mode == "finish":
        finish_run(job)
        continue
    try:
        with run_lifecycle(job) as tracker:
            for i in range(3):
                tracker.log({"loss": 1.0 / (tracker.step + 1), "epoch": i})
            if mode == "big":  # one record larger than a 32 KiB block of the .wandb log
                tracker.log({"blob": "x" * 70000})
            if mode == "fail":
                raise RuntimeError("injected failure")
            if mode == "preempt":
                raise Preempted(15)
    except (RuntimeError, Preempted):
        pass
"""


def new_run(root: Path, env: dict[str, str], *args: str) -> list[str]:
    return ok(aexp("new-run", *args, cwd=root, env=env)).split()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A project: E018/H012 condition full|ablated x seed 0..1, and E019/H013 seed 0..1.

    full/0 noop finished; full/1 W&B offline finished after a preempted attempt (2 fragments);
    ablated/0 noop failed; ablated/1 unbound; E019 seed 0 W&B offline bound only; seed 1 unbound.
    """
    base = tmp_path_factory.mktemp("sweep")
    env = hermetic_env(base / "env")
    root = base / "project"
    root.mkdir()
    subprocess.run([SIGNAC, "init"], cwd=root, env=env, check=True, capture_output=True)
    (root / "signac.rc").write_text(RC)
    full0, full1, abl0, abl1 = new_run(
        root,
        env,
        "--experiment",
        "E018",
        "--hypothesis",
        "H012",
        "--sp",
        "condition=full|ablated",
        "--sp",
        "seed=0..1",
    )
    e19_0, e19_1 = new_run(
        root, env, "--experiment", "E019", "--hypothesis", "H013", "--sp", "seed=0..1"
    )
    ok(aexp("bind-tracker", full0, abl0, cwd=root, env=env))
    ok(aexp("bind-tracker", full1, e19_0, "--backend", "wandb", cwd=root, env=env))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            EXECUTE,
            f"{full1}:preempt",
            f"{full1}:big",
            f"{full0}:ok",
            f"{abl0}:fail",
            f"{full1}:finish",
            f"{full0}:finish",
            f"{abl0}:finish",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    ids = dict(full0=full0, full1=full1, abl0=abl0, abl1=abl1, e19_0=e19_0, e19_1=e19_1)
    runs = {}
    for name, job_id in ids.items():
        doc = json.loads((root / "workspace" / job_id / "signac_job_document.json").read_text())
        if "tracker" in doc:
            runs[name] = doc["tracker"]["run_id"]
    return SimpleNamespace(root=root, env=env, ids=ids, runs=runs)


@pytest.fixture
def copy(sweep: SimpleNamespace, tmp_path: Path) -> Path:
    """A private copy of the sweep project, for tests that change it."""
    root = tmp_path / "copy"
    shutil.copytree(sweep.root, root, symlinks=True)
    return root


# -- version, help ----------------------------------------------------------------------------
COMMANDS = [
    "new-run", "bind-tracker", "sync-offline", "runs", "best", "compare", "plot", "show",
    "list-runs", "rearm", "rerun", "remove", "repair", "export-otel", "resources",
]  # fmt: skip


def test_version_and_help(tmp_path: Path) -> None:
    import aexp as package

    assert ok(aexp("--version", cwd=tmp_path)).strip() == f"aexp {package.__version__}"
    top = ok(aexp("--help", cwd=tmp_path))
    for name in COMMANDS:
        assert name in top
    for name in COMMANDS:
        text = ok(aexp(name, "--help", cwd=tmp_path))
        assert text.startswith(f"usage: aexp {name}")
        assert "examples:\n  aexp " + name in text, text
        assert "-C DIR" in text


def test_each_command_parses_alike_whether_built_alone_or_with_all_others() -> None:
    # main registers only the command it is given; `aexp/cli/foo_bar.py` must add `foo-bar`.
    everything = aexp_cli.build_parser()
    assert everything.command_names == tuple(COMMANDS)
    for name in COMMANDS:
        alone = aexp_cli.build_parser(only=name)
        assert alone.command_names == (name,)
        help_of = [
            p._subparsers._group_actions[0].choices[name].format_help()  # type: ignore[union-attr]
            for p in (alone, everything)
        ]
        assert help_of[0] == help_of[1]
    assert aexp_cli.build_parser(only="no-such-command").command_names == tuple(COMMANDS)


def test_runs_help_and_state_filter_know_every_selectable_state(tmp_path: Path) -> None:
    # aexp.cli.runs spells the states out so that its parser does not load aexp.results.
    from aexp.results.select import SELECTABLE_STATES

    text = ok(aexp("runs", "--help", cwd=tmp_path))
    assert f"States: {', '.join(SELECTABLE_STATES)}." in " ".join(text.split())
    parser = aexp_cli.build_parser()
    for state in SELECTABLE_STATES:
        assert parser.parse_args(["runs", "--state", state]).state == [state]
    fails(aexp("runs", "--state", "asleep", cwd=tmp_path), "unknown state 'asleep'")


def test_importing_the_cli_loads_no_signac_flow_tracker_client_or_plotting(tmp_path: Path) -> None:
    # Every command imports all of aexp.cli and builds the whole parser before it runs, so what
    # they load is paid by each call, including cron's idle `sync-offline` passes. The parser
    # needs no command's machinery either (bindings, results, settings): each command imports
    # its own when it runs.
    heavy = [
        "signac",
        "flow",
        "wandb",
        "mlflow",
        "matplotlib",
        "signac_dashboard",
        "aexp.binding",
        "aexp.results",
        "aexp.settings",
        "aexp.jobdoc",
        "aexp.sync",
    ]
    code = (
        "import sys, aexp.cli; aexp.cli.build_parser();"
        f"print(sorted(set({heavy!r}) & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


# -- new-run and the --sp grammar -------------------------------------------------------------
@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["seed=0"], [{"seed": 0}]),
        (["a=-3,b=+4,c=0.5,d=1e-3,e=.5,f=2E3"], [dict(a=-3, b=4, c=0.5, d=1e-3, e=0.5, f=2e3)]),
        (["t=true,f=false,n=null,T=True"], [{"t": True, "f": False, "n": None, "T": "True"}]),
        (
            ['s=full,q="007",r=\'1.5\',e="",x=inf'],
            [dict(s="full", q="007", r="1.5", e="", x="inf")],
        ),
        (['name="a,b|c=d..e"'], [{"name": "a,b|c=d..e"}]),
        ([" k = v , w=1 "], [{"k": "v", "w": 1}]),
        (["opt.lr=0.1,opt.name=adam"], [{"opt": {"lr": 0.1, "name": "adam"}}]),
        (["seed=0..2"], [{"seed": 0}, {"seed": 1}, {"seed": 2}]),
        (["seed=-1..0"], [{"seed": -1}, {"seed": 0}]),
        (["seed=3..3"], [{"seed": 3}]),
        (["seed=0..1|5"], [{"seed": 0}, {"seed": 1}, {"seed": 5}]),
        (['v=1|1|"1"|true'], [{"v": 1}, {"v": "1"}, {"v": True}]),
        (
            ["c=full|ablated", "seed=0..1"],
            [
                {"c": "full", "seed": 0},
                {"c": "full", "seed": 1},
                {"c": "ablated", "seed": 0},
                {"c": "ablated", "seed": 1},
            ],
        ),
        ([], [{}]),
    ],
)
def test_sp_grammar(specs: list[str], expected: list[dict]) -> None:
    assert parse_sp(specs) == expected
    # typed exactly: 1 is not True, 1.0 is a float
    assert [json.dumps(p, sort_keys=True) for p in parse_sp(specs)] == [
        json.dumps(p, sort_keys=True) for p in expected
    ]


@pytest.mark.parametrize(
    ("specs", "fragment"),
    [
        ([""], "is empty"),
        (["seed"], "has no '='"),
        (["=1"], "empty key"),
        (["a=1,,b=2"], "empty key=value pair"),
        (["seed="], "empty value"),
        (["seed=1|"], "empty value"),
        (["seed=5..2"], "is empty (START must not exceed END)"),
        (["seed=a..b"], "not a range START..END"),
        (["seed=0.5..2"], "not a range START..END"),
        (["seed=0..2..4"], "not a range START..END"),
        (["p=../data"], "not a range START..END"),
        (['n="abc'], "quote is not closed"),
        (['n=ab"c"'], "quote inside it"),
        (['n="a"b'], "do not match"),
        (["a b=1"], "may only hold"),
        (["a..b=1"], "may only hold"),
        (["experiment_id=E1"], "with --experiment"),
        (["seed=1", "seed=2"], "given twice"),
        (["a=1,a.b=2"], "both a value and a nested key"),
        ([f"seed=0..{MAX_SWEEP}"], f"more than {MAX_SWEEP} values"),
        (["a=0..999", "b=0..99"], f"more than {MAX_SWEEP} jobs"),
    ],
)
def test_sp_grammar_errors(specs: list[str], fragment: str) -> None:
    with pytest.raises(UsageError, match=re.escape(fragment)):
        parse_sp(specs)


@pytest.mark.parametrize(
    ("specs", "expected", "warnings"),
    [
        # A ';' where ',' was meant: one string value, said once, never split silently.
        (
            ["lr=0.1;seed=1"],
            [{"lr": "0.1;seed=1"}],
            ["lr=0.1;seed=1 became the string '0.1;seed=1'"],
        ),
        (["a=b=c"], [{"a": "b=c"}], ["a=b=c became the string 'b=c'"]),
        # Capitalised booleans and nulls of other languages stay strings, each named.
        (["flag=True"], [{"flag": "True"}], ["flag=True became the string 'True' (write true"]),
        (
            ["flag=TRUE|False"],
            [{"flag": "TRUE"}, {"flag": "False"}],
            ["flag=TRUE became the string 'TRUE'", "flag=False became the string 'False'"],
        ),
        (["opt=None"], [{"opt": "None"}], ["opt=None became the string 'None' (write null"]),
        (["lr=inf"], [{"lr": "inf"}], ["lr=inf became the string 'inf'"]),
        # What the grammar types, or a quoted string, is what the user meant: no warning.
        (
            ["flag=true,opt=null,lr=0.1,seed=1"],
            [{"flag": True, "opt": None, "lr": 0.1, "seed": 1}],
            [],
        ),
        (["name='True'", 'expr="a=b;c"'], [{"name": "True", "expr": "a=b;c"}], []),
        (["model=resnet18"], [{"model": "resnet18"}], []),
    ],
)
def test_sp_values_probably_meant_otherwise_are_named(specs, expected, warnings) -> None:
    said: list[str] = []
    assert parse_sp(specs, warn=said.append) == expected
    assert len(said) == len(warnings)
    for sentence, fragment in zip(said, warnings, strict=True):
        assert fragment in sentence


def test_new_run_warns_once_per_doubtful_value_and_still_creates(project) -> None:
    root = Path(project.path)
    result = aexp(
        "new-run", "--experiment", "E1", "--hypothesis", "H1", "--sp", "lr=0.1;seed=1",
        "--sp", "flag=True", cwd=root,
    )  # fmt: skip
    (job_id,) = ok(result).split()
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("aexp: warning: --sp ") for line in lines)
    assert "became the string '0.1;seed=1'" in lines[0]
    assert "became the string 'True'" in lines[1]
    sp = json.loads((root / "workspace" / job_id / "signac_statepoint.json").read_text())
    assert sp["lr"] == "0.1;seed=1" and sp["flag"] == "True"


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        # The misspelt option is what is wrong, not the required one it was meant to be; the
        # closest known option comes first.
        (
            ["new-run", "--experiment", "E1", "--hypotesis", "H1"],
            "unknown option --hypotesis (did you mean --hypothesis?); see 'aexp new-run --help'.",
        ),
        (
            ["new-run", "--experimnt=E1", "--hypothesis", "H1"],
            "unknown option --experimnt (did you mean --experiment",
        ),
        (["runs", "--metrix", "loss"], "unknown option --metrix (did you mean --metrics"),
        (["runs", "--sotr", "loss"], "unknown option --sotr (did you mean --sort"),
        (["sync-offline", "--dryrun"], "unknown option --dryrun (did you mean --dry-run"),
        (["show", "abc", "--project-dri", "."], "unknown option --project-dri (did you mean"),
        (["runs", "--zzzzzz"], "unknown option --zzzzzz; see 'aexp runs --help'."),
        (["synk-offline"], "unknown command 'synk-offline' (did you mean sync-offline?)"),
        (["rearn", "abc"], "unknown command 'rearn' (did you mean rerun or rearm?)"),
    ],
)
def test_a_misspelt_option_or_command_is_named_with_what_was_meant(
    tmp_path: Path, args: list[str], sentence: str
) -> None:
    result = aexp(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("aexp: error: ") and sentence in line, line


def test_new_run_sweep_is_typed_and_idempotent(project, tmp_path: Path) -> None:
    root = Path(project.path)
    args = ["--experiment", "E018", "--hypothesis", "H012", "--sp", "condition=full|ablated"]
    args += ["--sp", 'seed=0..2,lr=1e-3,tag="7",opt.name=adam']
    preview = ok(aexp("new-run", *args, "--dry-run", cwd=root))
    assert not any((root / "workspace").iterdir()), "--dry-run created something"
    ids = ok(aexp("new-run", *args, cwd=root)).split()
    assert len(ids) == 6 == len(set(ids))
    assert [line.split("\t")[0] for line in preview.splitlines()] == ids
    assert sorted(p.name for p in (root / "workspace").iterdir()) == sorted(ids)
    sp = json.loads((root / "workspace" / ids[4] / "signac_statepoint.json").read_text())
    assert sp == {
        "hypothesis_id": "H012",
        "experiment_id": "E018",
        "condition": "ablated",
        "seed": 1,
        "lr": 0.001,
        "tag": "7",
        "opt": {"name": "adam"},
    }
    doc = json.loads((root / "workspace" / ids[4] / "signac_job_document.json").read_text())
    assert doc == {
        "limina": {"experiment_id": "E018", "hypothesis_id": "H012"},
        "status": "created",
    }
    before = snapshot(root)
    assert ok(aexp("new-run", *args, cwd=root)).split() == ids  # the same jobs, nothing changed
    assert snapshot(root) == before


# -- bind-tracker -----------------------------------------------------------------------------
def test_bind_tracker_defaults_idempotence_and_stdin(copy: Path, sweep: SimpleNamespace) -> None:
    job = sweep.ids["abl1"]
    first = json.loads(ok(aexp("bind-tracker", job[:6], "--tag", "extra", cwd=copy)))
    assert first["job_id"] == job
    assert (first["backend"], first["project"], first["group"]) == (
        "noop",
        "demo",
        "H012/E018/ablated",
    )
    assert first["state"] == "bound"
    events = copy / "workspace" / job / "tracker_log" / first["run_id"] / "events.jsonl"
    init = json.loads(events.read_text().splitlines()[0])
    assert init["tags"] == ["H012", "E018", "ablated", "sweep", "extra"]
    assert init["config"]["job_id"] == job
    again = json.loads(
        ok(aexp("bind-tracker", job, "--backend", "noop", "--project", "demo", cwd=copy))
    )
    assert again == first  # the same run: idempotent
    # several ids from stdin, the bound one included; one JSON line per job
    both = ok(aexp("bind-tracker", "-", cwd=copy, stdin=f"{job}\n{sweep.ids['e19_1']}\n"))
    lines = [json.loads(line) for line in both.splitlines()]
    assert [b["job_id"] for b in lines] == [job, sweep.ids["e19_1"]]
    assert lines[0]["run_id"] == first["run_id"]


def test_bind_tracker_wandb_online_and_env_override(copy: Path, sweep: SimpleNamespace) -> None:
    job = sweep.ids["e19_1"]
    env = {**os.environ, "AEXP_PROJECT": "from-env"}
    out = ok(
        aexp(
            "bind-tracker",
            job,
            "--backend",
            "wandb",
            "--online",
            "--entity",
            "team",
            cwd=copy,
            env=env,
        )
    )
    binding = json.loads(out)
    assert binding["backend"] == "wandb" and binding["offline"] is False
    assert binding["project"] == "from-env"
    assert binding["url"] == f"https://wandb.ai/team/from-env/runs/{binding['run_id']}"
    assert not (copy / "workspace" / job / "wandb").exists()  # binding alone writes no W&B files


# -- runs, show -------------------------------------------------------------------------------
def test_runs_table_json_and_filters(sweep: SimpleNamespace) -> None:
    ids, runs, root = sweep.ids, sweep.runs, sweep.root
    rows = {r["job_id"]: r for r in json.loads(ok(aexp("runs", "--json", cwd=root)))["jobs"]}
    assert set(rows) == set(ids.values())
    assert rows[ids["full0"]]["state"] == "finished" and rows[ids["full0"]]["backend"] == "noop"
    assert rows[ids["full1"]]["state"] == "finished" and rows[ids["full1"]]["synced"] is False
    assert rows[ids["abl0"]]["state"] == "failed"
    assert (
        rows[ids["abl1"]]["state"] == "unbound"
        and rows[ids["abl1"]]["group"] == "H012/E018/ablated"
    )
    assert rows[ids["e19_0"]]["state"] == "bound" and rows[ids["e19_0"]]["run_id"] == runs["e19_0"]
    # By default the state-point keys that vary across the rows come first; --params '' hides
    # them (today's columns, as before the results table).
    table = ok(aexp("runs", cwd=root)).splitlines()
    assert table[0].split() == [
        "JOB",
        *("hypothesis_id", "experiment_id", "condition", "seed"),
        *("GROUP", "BACKEND", "RUN", "STATE", "SYNCED", "URL"),
    ]
    line = next(row for row in table if row.startswith(ids["full1"]))
    assert line.split()[1:5] == ["H012", "E018", "full", "1"]
    table = ok(aexp("runs", "--params", "", cwd=root)).splitlines()
    assert table[0].split() == ["JOB", "GROUP", "BACKEND", "RUN", "STATE", "SYNCED", "URL"]
    line = next(row for row in table if row.startswith(ids["full1"]))
    assert line.split() == [
        ids["full1"],
        "H012/E018/full",
        "wandb-offline",
        runs["full1"],
        "finished",
        "no",
        "-",
    ]
    assert ok(aexp("runs", "--state", "failed", "-q", cwd=root)).split() == [ids["abl0"]]
    assert set(ok(aexp("runs", "--experiment", "E019", "-q", cwd=root)).split()) == {
        ids["e19_0"],
        ids["e19_1"],
    }
    assert ok(
        aexp("runs", "--hypothesis", "H012", "--state", "unbound", "-q", cwd=root)
    ).split() == [ids["abl1"]]
    assert json.loads(ok(aexp("runs", "--state", "running", "--json", cwd=root)))["jobs"] == []
    empty = aexp("runs", "--state", "running", cwd=root)
    assert ok(empty) == "" and "no jobs match" in empty.stderr


def test_runs_marks_a_corrupt_binding_and_goes_on(copy: Path, sweep: SimpleNamespace) -> None:
    doc_path = copy / "workspace" / sweep.ids["full0"] / "signac_job_document.json"
    doc = json.loads(doc_path.read_text())
    doc["tracker"]["state"] = "exploded"
    doc_path.write_text(json.dumps(doc))
    result = aexp("runs", "--json", cwd=copy)
    rows = {r["job_id"]: r["state"] for r in json.loads(ok(result))["jobs"]}
    assert rows[sweep.ids["full0"]] == "corrupt" and rows[sweep.ids["abl0"]] == "failed"
    assert f"warning: job {sweep.ids['full0']}" in result.stderr


def test_show_finds_a_job_by_id_prefix_and_run_id(sweep: SimpleNamespace) -> None:
    job, run, root = sweep.ids["full1"], sweep.runs["full1"], sweep.root
    by_id = json.loads(ok(aexp("show", job, "--json", cwd=root)))
    assert by_id == json.loads(ok(aexp("show", job[:10], "--json", cwd=root)))
    assert by_id == json.loads(ok(aexp("show", run, "--json", cwd=root)))  # the round trip
    assert by_id["job_id"] == job and by_id["statepoint"]["seed"] == 1
    assert by_id["document"]["limina"] == {"experiment_id": "E018", "hypothesis_id": "H012"}
    assert by_id["tracker"]["run_id"] == run and by_id["tracker"]["attempts"] == 2
    assert [run in Path(f["path"]).name for f in by_id["run_files"]] == [True, True]
    assert ok(aexp("show", run, "--field", "job_id", cwd=root)).strip() == job
    assert ok(aexp("show", job, "--field", "statepoint.seed", cwd=root)).strip() == "1"
    text = ok(aexp("show", job, cwd=root))
    for needle in (
        f"job {job}",
        "state point",
        "  condition      full",
        "job document",
        "tracker",
        "run files",
        "(W&B offline run, not synced)",
    ):
        assert needle in text, needle
    assert re.search(rf"^  run_id +{run}$", text, re.M), text
    unbound = ok(aexp("show", sweep.ids["abl1"], cwd=root))
    assert f"not bound (bind it with: aexp bind-tracker {sweep.ids['abl1']})" in unbound


def test_project_dir_option(sweep: SimpleNamespace, tmp_path: Path) -> None:
    root = sweep.root
    expected = ok(aexp("runs", "-q", cwd=root))
    assert ok(aexp("-C", str(root), "runs", "-q", cwd=tmp_path)) == expected
    assert ok(aexp("runs", "-q", "-C", str(root / "workspace"), cwd=tmp_path)) == expected


# -- list-runs --------------------------------------------------------------------------------
def test_list_runs_noop(sweep: SimpleNamespace) -> None:
    records = json.loads(ok(aexp("list-runs", "--json", cwd=sweep.root)))  # noop, demo: signac.rc
    by_job = {r["config"]["job_id"]: r for r in records}
    assert set(by_job) == {sweep.ids["full0"], sweep.ids["abl0"]}
    assert by_job[sweep.ids["abl0"]]["state"] == "failed"
    assert by_job[sweep.ids["full0"]]["last_metrics"]["epoch"] == 2
    table = ok(
        aexp("list-runs", "--backend", "noop", "--group-prefix", "H012/E018/abl", cwd=sweep.root)
    )
    assert table.splitlines()[1].split() == [
        sweep.runs["abl0"],
        "failed",
        "1",
        "H012/E018/ablated",
        sweep.ids["abl0"],
    ]
    none = aexp("list-runs", "--project", "other", cwd=sweep.root)
    assert ok(none) == "" and "no noop runs in project 'other'" in none.stderr


def test_list_runs_wandb_offline_merges_fragments(sweep: SimpleNamespace) -> None:
    job, run = sweep.ids["full1"], sweep.runs["full1"]
    out = ok(aexp("list-runs", "--backend", "wandb", "--project", "demo", "--json", cwd=sweep.root))
    (record,) = json.loads(out)  # E019's run is bound but never ran: no local folder yet
    assert (record["id"], record["state"], record["exit_code"]) == (run, "finished", 0)
    assert record["group"] == "H012/E018/full" and record["tags"][:3] == ["H012", "E018", "full"]
    assert record["config"]["job_id"] == job and record["config"]["limina.hypothesis_id"] == "H012"
    assert record["synced"] is False and record["last_metrics"]["epoch"] == 2
    first, second = record["fragments"]
    assert (first["state"], first["exit_code"], first["first_step"], first["last_step"]) == (
        "preempted",
        143,
        0,
        2,
    )
    assert (second["state"], second["exit_code"], second["first_step"], second["last_step"]) == (
        "finished",
        0,
        3,
        6,
    )
    assert first["start_time"] < second["start_time"]
    table = ok(
        aexp("list-runs", "--backend", "wandb", "--project", "demo", "--offline", cwd=sweep.root)
    )
    assert table.splitlines()[1].split() == [run, "finished", "0", "H012/E018/full", job, "2", "no"]
    none = aexp(
        "list-runs",
        "--backend",
        "wandb",
        "--project",
        "demo",
        "--group-prefix",
        "H013/",
        cwd=sweep.root,
    )
    assert ok(none) == "" and "no wandb runs" in none.stderr


FAKE_API = """\
# Test stand-in for W&B's cloud API: no W&B server can run here, so wandb.Api is replaced (this
# is the only mocked piece). It records how it was called and returns one run.
import json, os
import wandb

class _Run:
    id, group, state, url = "cloud001", "H012/E018/full", "crashed", "https://wandb.example/r/cloud001"
    tags, config, summary = ["H012"], {"job_id": "j"}, {"loss": 0.25, "_step": 9}

class _Api:
    def __init__(self, *args, **kwargs):
        pass

    def runs(self, path, filters=None):
        with open(os.environ["FAKE_API_LOG"], "w") as fh:
            json.dump({"path": path, "filters": filters}, fh)
        return [_Run()]

wandb.Api = _Api
"""


def test_list_runs_online_uses_the_wandb_api(sweep: SimpleNamespace, tmp_path: Path) -> None:
    fake = tmp_path / "fake_api"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(FAKE_API)
    env = {**os.environ, "PYTHONPATH": str(fake), "FAKE_API_LOG": str(tmp_path / "api.json")}
    out = aexp(
        "list-runs",
        "--backend",
        "wandb",
        "--online",
        "--entity",
        "team",
        "--project",
        "demo",
        "--group-prefix",
        "H012/",
        "--json",
        cwd=sweep.root,
        env=env,
    )
    (record,) = json.loads(ok(out))
    assert (record["id"], record["state"]) == ("cloud001", "failed")  # W&B's "crashed"
    assert record["url"] == "https://wandb.example/r/cloud001"
    assert record["last_metrics"] == {"loss": 0.25}
    assert json.loads((tmp_path / "api.json").read_text()) == {
        "path": "team/demo",
        "filters": {"group": {"$regex": "^H012/"}},
    }


# -- rearm ------------------------------------------------------------------------------------
def test_rearm(copy: Path, sweep: SimpleNamespace) -> None:
    job, run = sweep.ids["abl0"], sweep.runs["abl0"]
    out = ok(aexp("rearm", job[:8], cwd=copy))
    assert out.strip() == f"re-armed {job} (run {run}): eligible for execute again"
    rows = {r["job_id"]: r for r in json.loads(ok(aexp("runs", "--json", cwd=copy)))["jobs"]}
    assert rows[job]["state"] == "bound" and rows[job]["run_id"] == run
    assert rows[job]["status"] == "created"
    fails(aexp("rearm", job, cwd=copy), "is bound, not failed")


# -- bad input: one sentence, exit 2, nothing changed -----------------------------------------
def _corrupt_tracker(root: Path, job: str) -> None:
    path = root / "workspace" / job / "signac_job_document.json"
    doc = json.loads(path.read_text())
    doc["tracker"]["run_id"] = 17
    path.write_text(json.dumps(doc))


def _break_document(root: Path, job: str) -> None:
    (root / "workspace" / job / "signac_job_document.json").write_text('{"tracker": ')


def _break_statepoint(root: Path, job: str) -> None:
    (root / "workspace" / job / "signac_statepoint.json").write_text('{"seed": ')


def _rc(text: str):
    def write(root: Path, job: str) -> None:
        (root / "signac.rc").write_text(text)

    return write


def _rc_is_a_directory(root: Path, job: str) -> None:
    (root / "signac.rc").unlink()
    (root / "signac.rc").mkdir()


def _rc_binary(root: Path, job: str) -> None:
    (root / "signac.rc").write_bytes(b"[tracker]\nproject = \xff\xfe\n")


NEW = "new-run --experiment E1 --hypothesis H1"
# (name, command line, setup, expected part of the message). In the command line, {abl1} etc. are
# job ids of the sweep and {prefix} is a prefix two of them share. setup: None, a function of
# (project root, job id of full0), "hide-wandb" (the wandb package cannot be imported),
# "hide-wandb-rc" (the same, with signac.rc asking for wandb), or "elsewhere" (run outside).
BAD_INPUT = [
    ("unknown command", "frobnicate", None, "unknown command 'frobnicate'; commands: new-run"),
    ("no command", "", None, "no command given"),
    ("unknown flag", "runs --frob", None, "unknown option --frob; see 'aexp runs --help'"),
    ("unknown state", "runs --state weird", None, "unknown state 'weird'"),
    (
        "missing argument",
        "new-run --hypothesis H1",
        None,
        "missing required argument: --experiment",
    ),
    ("exclusive flags", "list-runs --online --offline", None, "not allowed with argument"),
    ("sp without =", f"{NEW} --sp seed", None, "has no '='"),
    ("sp empty key", f"{NEW} --sp =3", None, "empty key"),
    ("sp empty range", f"{NEW} --sp seed=5..2", None, "range 5..2 is empty"),
    ("sp bad range", f"{NEW} --sp seed=a..b", None, "not a range START..END"),
    ("sp unclosed quote", f"{NEW} --sp 'n=\"x'", None, "not closed"),
    ("sp too large", f"{NEW} --sp a=0..200,b=0..200", None, "more than 10000 jobs"),
    ("sp reserved key", f"{NEW} --sp hypothesis_id=H2", None, "with --hypothesis"),
    ("bad experiment id", "new-run --experiment 'E 1' --hypothesis H1", None, "must be a name"),
    ("bad hypothesis id", "new-run --experiment E1 --hypothesis H/1 --dry-run", None, "a name"),
    (
        "unknown backend (bind)",
        "bind-tracker {abl1} --backend comet",
        None,
        "known backends: mlflow, noop",
    ),
    ("unknown backend (list)", "list-runs --backend comet", None, "unknown tracker backend"),
    ("unknown job id", "show 0000", None, "no job or tracker run with id '0000'"),
    ("one unknown job id", "bind-tracker {abl1} 0000", None, "no job or tracker run with id"),
    ("ambiguous prefix", "show {prefix}", None, "matches 2 jobs; give more characters"),
    ("no ids on stdin", "bind-tracker -", None, "no job ids given"),
    ("rearm unbound", "rearm {abl1}", None, "is not bound to a tracker run; nothing to re-arm"),
    ("rearm not failed", "rearm {abl0} {full0}", None, "is finished, not failed"),
    ("sync unbound job", "sync-offline {abl1}", None, "is not bound to a tracker run"),
    ("sync noop job", "sync-offline {full0}", None, "only W&B offline runs are synced"),
    (
        "sync --jobs 0",
        "sync-offline --jobs 0",
        None,
        "--jobs: must be a whole number of at least 1",
    ),
    ("sync --timeout -1", "sync-offline --timeout -1", None, "--timeout: must be a positive"),
    ("bind other backend", "bind-tracker {full0} --backend wandb", None, "already bound to noop"),
    ("bind bad project", "bind-tracker {abl1} --project a/b", None, "not a valid tracker project"),
    ("list bad project", "list-runs --project a#b", None, "not a valid tracker project name"),
    (
        "rc bad project",
        "bind-tracker {abl1}",
        _rc("[tracker]\nproject = a:b\n"),
        "[tracker] project",
    ),
    ("rc malformed", "bind-tracker {abl1}", _rc("[tracker\nbackend = noop\n"), "not a valid INI"),
    ("rc bad value", "list-runs", _rc("[tracker]\noffline = maybe\n"), "must be true or false"),
    (
        "rc bad backend",
        "list-runs",
        _rc("[tracker]\nbackend = comet\n"),
        "unknown tracker backend",
    ),
    ("rc top-level key", "bind-tracker {abl1}", _rc("project = x\n"), "top-level 'project' key"),
    ("rc is a directory", "bind-tracker {abl1}", _rc_is_a_directory, "cannot read"),
    ("rc not UTF-8", "sync-offline", _rc_binary, "cannot read"),
    (
        "corrupt binding (show)",
        "show {full0}",
        _corrupt_tracker,
        "job.doc['tracker']['run_id'] is 17, not a string",
    ),
    ("corrupt binding (bind)", "bind-tracker {full0}", _corrupt_tracker, "['run_id'] is 17"),
    ("corrupt binding (rearm)", "rearm {full0}", _corrupt_tracker, "['run_id'] is 17"),
    ("corrupt binding (sync)", "sync-offline {full0}", _corrupt_tracker, "['run_id'] is 17"),
    ("broken job document", "show {full0}", _break_document, "is not valid JSON"),
    (
        "broken state point",
        "show {full0}",
        _break_statepoint,
        "missing or damaged; rebuild it from the run's journal with: aexp repair",
    ),
    ("no wandb (bind)", "bind-tracker {abl1} --backend wandb", "hide-wandb", "needs the wandb"),
    ("no wandb (list)", "list-runs --backend wandb --offline", "hide-wandb", "needs the wandb"),
    ("no wandb (rc)", "bind-tracker {abl1}", "hide-wandb-rc", "needs the wandb package"),
    ("not in a project", "runs", "elsewhere", "no signac project at or above"),
    ("-C not a directory", "-C nowhere runs", None, "-C nowhere: no such directory"),
    ("show bad field", "show {full0} --field tracker.nope", None, "has no 'nope' there"),
]


@pytest.mark.parametrize(
    ("command", "setup", "fragment"), [r[1:] for r in BAD_INPUT], ids=[r[0] for r in BAD_INPUT]
)
def test_bad_input(copy: Path, sweep: SimpleNamespace, tmp_path: Path, command, setup, fragment):
    ids = dict(sweep.ids)
    first = sorted(ids.values())
    ids["prefix"] = next(a[:1] for a, b in itertools.pairwise(first) if a[0] == b[0])
    env, cwd = dict(os.environ), copy
    if callable(setup):
        setup(copy, sweep.ids["full0"])
    elif setup in ("hide-wandb", "hide-wandb-rc"):
        hidden = tmp_path / "hidden"
        hidden.mkdir()
        (hidden / "wandb.py").write_text('raise ImportError("wandb is hidden by this test")\n')
        env["PYTHONPATH"] = str(hidden)
        if setup == "hide-wandb-rc":
            (copy / "signac.rc").write_text("[tracker]\nbackend = wandb\n")
    elif setup == "elsewhere":
        cwd = tmp_path / "elsewhere"
        cwd.mkdir()
    before = snapshot(copy)
    fails(aexp(*shlex.split(command.format(**ids)), cwd=cwd, env=env), fragment)
    assert snapshot(copy) == before, "bad input changed the project"


# -- the offline W&B reader -------------------------------------------------------------------
def test_offline_reader_handles_blocks_torn_tails_and_bad_headers(
    sweep: SimpleNamespace, tmp_path: Path
) -> None:
    from aexp.wandb_offline import (
        OfflineRunError,
        find_fragments,
        read_fragment,
        read_offline_run,
        read_payloads,
    )

    job_dir = sweep.root / "workspace" / sweep.ids["full1"]
    _, second = find_fragments(job_dir)
    log = next(second.glob("run-*.wandb"))
    assert log.stat().st_size > 2 * 32 * 1024  # the 70 kB row spans several blocks
    fragment = read_fragment(second)
    assert fragment.summary["blob"] == "x" * 70000 and not fragment.torn
    assert fragment.run_id == sweep.runs["full1"] and fragment.project == "demo"
    record = read_offline_run(job_dir)
    assert (record.id, record.state, record.path) == (sweep.runs["full1"], "finished", str(second))
    assert "blob" in record.last_metrics and "_step" not in record.last_metrics

    # a log cut in the middle of a record (the run is still being written, or was killed)
    payloads, torn = read_payloads(log)
    assert not torn and len(payloads) > 10
    cut = tmp_path / "offline-run-20000101_000000-cut" / log.name
    cut.parent.mkdir()
    data = log.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 3])
    partial = read_fragment(cut.parent)
    assert partial.torn and partial.state == "running" and partial.exit_code is None
    assert partial.run_id == sweep.runs["full1"] and partial.config["job_id"] == sweep.ids["full1"]

    # a damaged byte stops reading at that record, keeping what came before
    damaged = bytearray(data)
    damaged[len(data) // 3] ^= 0xFF
    cut.write_bytes(bytes(damaged))
    assert read_fragment(cut.parent).torn

    cut.write_bytes(b"not a wandb log at all")
    with pytest.raises(OfflineRunError, match="not a W&B transaction log"):
        read_fragment(cut.parent)


# -- sync-offline (delegates to aexp.sync, issue 5) -------------------------------------------
def test_sync_offline_dry_run_changes_nothing(copy: Path) -> None:
    before = snapshot(copy)
    report = json.loads(ok(aexp("sync-offline", "--dry-run", "--json", cwd=copy)))
    assert report["schema"] == "aexp.sync-offline/1"
    results = report["results"]
    assert results and all(
        set(r)
        >= {
            "path",
            "job_id",
            "run_id",
            "ok",
            "skipped",
            "returncode",
            "stdout",
            "stderr",
            "duration",
        }
        for r in results
    )
    assert snapshot(copy) == before
    text = ok(aexp("sync-offline", "--dry-run", cwd=copy))
    unit = r"^dry run: wandb: would upload \d+ run\(s\) \(\d+ fragment\(s\)\)"
    assert re.search(unit, text, re.M), text


def test_sync_offline_reports_failures_and_exits_1(copy: Path, sweep: SimpleNamespace) -> None:
    env = {**os.environ, "WANDB_API_KEY": "x" * 40}  # the base URL is a closed loopback port
    result = aexp("sync-offline", "--timeout", "5", "--jobs", "2", cwd=copy, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"failed: job {sweep.ids['full1']} run {sweep.runs['full1']}" in result.stderr
    assert re.search(r"^wandb: 1 failed \(", result.stdout, re.M), result.stdout
    assert not list(copy.glob("workspace/*/wandb/offline-run-*/*.wandb.synced"))


def test_sync_offline_against_a_loopback_server(
    copy: Path, sweep: SimpleNamespace, tmp_path: Path
) -> None:
    wandb_server = pytest.importorskip("wandb_server")
    with wandb_server.FakeWandbServer() as server:
        env = wandb_server.wandb_env(tmp_path, server.base_url)
        job, run = sweep.ids["full1"], sweep.runs["full1"]
        report = json.loads(ok(aexp("sync-offline", job[:8], "--json", cwd=copy, env=env)))
        results = report["results"]
        mine = [r for r in results if r["run_id"] == run]
        assert mine and all(r["ok"] and not r["skipped"] for r in mine), results
        assert server.runs()[run]["group"] == "H012/E018/full"
        again = ok(aexp("sync-offline", cwd=copy, env=env))
        assert again.splitlines()[-1].startswith("wandb: 1 already synced")
