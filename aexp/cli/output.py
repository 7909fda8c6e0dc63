"""How commands print: values, tables, titled sections, JSON and warnings (stdout for what
scripts read, stderr for warnings).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from aexp.cli.parsing import PROG
from aexp.contract import plain


def _fmt(value: Any) -> str:
    """One table or section cell: `-` for None, `""` for an empty string, else JSON text."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows under a header, columns padded to their widest cell and two spaces apart."""
    cells = [list(header), *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _section(title: str, mapping: dict[str, Any]) -> list[str]:
    """The lines of a titled block of `show`: one indented `key  value` line per leaf."""
    from aexp.results.select import flatten

    flat = flatten(mapping)
    lines = [title]
    width = max((len(k) for k in flat), default=0)
    lines += [f"  {key.ljust(width)}  {_fmt(value)}" for key, value in flat.items()]
    return lines


def _dump(obj: Any) -> str:
    """`obj` as indented JSON (what `--json` prints)."""
    return json.dumps(plain(obj), indent=2, default=str)


def _warn(message: str) -> None:
    """One `aexp: warning:` line on stderr; the command goes on."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)
