"""Every code sample of README.md and docs/*.md runs (tests/docs_blocks.py says how each kind of
fenced block is checked), so the docs say what the code does. Each file is one session in a
fresh copy of the template, its blocks in order. The blocks marked `<!-- not run: ... -->` are
listed by `test_few_blocks_are_not_run`, which keeps that list short.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PYTHON, REPO
from docs_blocks import KINDS, blocks, console_examples, matches

DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
NOT_RUN_MAX = 8
COMMANDS = [
    "status", "new-run", "bind-tracker", "sync-offline", "runs", "best", "compare", "plot",
    "show", "diagnose", "list-runs", "rearm", "rerun", "remove", "apply", "repair",
    "export-otel", "mcp",
]  # fmt: skip


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def _run_console(code: str, where: str, cwd: Path) -> None:
    for command, expected in console_examples(code):
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        actual = "\n".join(line.rstrip() for line in (result.stdout + result.stderr).splitlines())
        code_expected = 2 if "aexp: error:" in expected else 0
        assert result.returncode == code_expected, (
            f"{where}: $ {command}\nexit {result.returncode}\n{actual}"
        )
        assert "Traceback" not in actual, f"{where}: $ {command}\n{actual}"
        assert matches(expected, actual), (
            f"{where}: $ {command}\n--- expected\n{expected}\n--- got\n{actual}"
        )


def _run_python(code: str, where: str, cwd: Path, tmp_path: Path) -> None:
    script = tmp_path / f"block_{where.replace('/', '_').replace(':', '_')}.py"
    script.write_text(code)
    result = subprocess.run(
        [PYTHON, str(script)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{where}: exit {result.returncode}\n{result.stderr}"


def _check(block, cwd: Path, tmp_path: Path) -> None:
    if block.kind == "python":
        _run_python(block.code, block.where, cwd, tmp_path)
    elif block.kind == "console":
        _run_console(block.code, block.where, cwd)
    elif block.kind == "ini":
        from aexp.settings import load_settings

        where = tmp_path / "ini" / block.where.replace("/", "_")
        where.mkdir(parents=True)
        (where / "signac.rc").write_text(block.code)
        load_settings(where)
    elif block.kind == "json":
        try:
            json.loads(block.code)
        except ValueError:
            for line in block.code.splitlines():
                if line.strip():
                    json.loads(line)
    elif block.kind in ("bash", "sh"):
        subprocess.run(["bash", "-n"], input=block.code, text=True, check=True)
    elif block.kind == "jinja":
        import jinja2

        jinja2.Environment().parse(block.code)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_code_sample_runs(doc: Path, template: Path, tmp_path: Path) -> None:
    for block in blocks(doc, REPO):
        assert block.kind in KINDS, f"{block.where}: say what kind of block this is ({KINDS})"
        if block.not_run is not None:
            continue
        if block.file is not None:
            (template / block.file).write_text(block.code)
            continue
        _check(block, template, tmp_path)


def test_few_blocks_are_not_run() -> None:
    skipped = [b for doc in DOCS for b in blocks(doc, REPO) if b.not_run is not None]
    for block in skipped:
        assert block.not_run, f"{block.where}: say why the block cannot run here"
    listing = "\n".join(f"{b.where}: {b.not_run}" for b in skipped)
    print(f"\nblocks not run:\n{listing}")
    assert len(skipped) <= NOT_RUN_MAX, listing


def test_cli_page_shows_every_command() -> None:
    examples = [
        command
        for block in blocks(REPO / "docs" / "cli.md", REPO)
        if block.kind == "console" and block.not_run is None
        for command, _ in console_examples(block.code)
    ]
    for name in [*COMMANDS, "--version"]:
        assert any(f"aexp {name}" in command for command in examples), name


def test_the_adapter_contract_on_the_page_is_the_code() -> None:
    """docs/tracker-adapters.md's contract block: every method it shows exists on
    TrackerAdapter with the same parameters, and it shows every abstract one."""
    from aexp.trackers import TrackerAdapter

    contract = [
        b
        for b in blocks(REPO / "docs" / "tracker-adapters.md", REPO)
        if b.kind == "python" and "class TrackerAdapter" in b.code
    ]
    assert contract, "the page shows no contract"
    shown = {}
    for block in contract:  # the five methods, then the extensions
        tree = ast.parse(block.code)
        (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
        for node in cls.body:
            if isinstance(node, ast.FunctionDef):
                args = node.args
                shown[node.name] = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    for name, params in shown.items():
        real = list(inspect.signature(getattr(TrackerAdapter, name)).parameters)
        if params and params[0] == "cls":
            params = params[1:]  # a classmethod's signature has no cls
        assert params == real, f"{name}: the page shows {params}, the code has {real}"
    assert set(TrackerAdapter.__abstractmethods__) <= set(shown)


def test_the_package_docstring_example_runs(template: Path, tmp_path: Path) -> None:
    """aexp/__init__.py's example (what `help(aexp)` shows) runs, W&B offline, and its run ends
    finished without any other call."""
    import textwrap

    import aexp

    body = aexp.__doc__.split("\n", 2)[2]  # after the title line and the blank line
    example = body[: body.index("\n\nImporting aexp")]
    code = textwrap.dedent(example)
    assert "run_lifecycle" in code and 'assert get_binding(job)["state"] == "finished"' in code
    pytest.importorskip("wandb")
    _run_python(code, "aexp/__init__.py", template, tmp_path)
