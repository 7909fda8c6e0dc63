"""The `aexp` console script (pyproject.toml): the startup guard (aexp.startup), then the
command line (aexp.cli). Its own module, imported by nothing else: the guard is set before
aexp.cli and everything it imports load."""

from __future__ import annotations

from aexp.startup import AEXP_INTERRUPTED_LINE, quiet_interrupts


def main() -> int:
    """Run `aexp` with sys.argv; returns its exit code (aexp.door's table)."""
    quiet_interrupts(line=AEXP_INTERRUPTED_LINE)
    from aexp.cli import main as cli_main

    return cli_main()


__all__ = ["main"]
