"""Running the installed `aexp` script as a user does, and judging its answer: a success
(exit 0, no traceback) or bad input (exit 2, one `aexp: error:` sentence, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

AEXP = str(Path(sys.executable).parent / "aexp")


def aexp_cli(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AEXP, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def bad(result: subprocess.CompletedProcess, fragment: str, *, warnings: bool = False) -> str:
    """The one error line (checked to hold `fragment`); `warnings`: warning lines about the
    jobs read may come before it."""
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    if warnings:
        lines = [line for line in lines if not line.startswith("aexp: warning:")]
    assert len(lines) == 1 and lines[0].startswith("aexp: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]
