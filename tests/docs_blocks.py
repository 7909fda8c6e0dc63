"""The fenced code blocks of README.md and docs/*.md, and how each kind is checked.

Each markdown file is one session in a fresh copy of the template: its blocks run in order, so
a later block sees what an earlier one made (jobs, runs, files).

    ```python     run as a script in the project directory; it must exit 0
    ```console    each `$ command` runs in bash (pipefail) in the project directory; the lines
                  after it are its output (stdout and stderr), where `...` stands for any text;
                  the exit code must be 0, or 2 when the output says `aexp: error:`
    ```ini        a signac.rc: aexp.load_settings must accept it
    ```json       JSON: the whole block, or one JSON value per line
    ```bash/sh    shell: `bash -n` must accept it
    ```jinja      a Jinja template: jinja2 must parse it
    ```text       not code (a listing, a diagram): not checked

An HTML comment on the line before a block changes what happens to it:

    <!-- file: experiment.py -->        the block is written to that file of the project
    <!-- not run: needs a SLURM cluster -->   the block is not run (the reason is listed by
                                            the test; keep these few)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("python", "console", "ini", "json", "bash", "sh", "jinja", "text")
_MARKER = re.compile(r"^<!--\s*(not run|file):\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    doc: str  # the markdown file, relative to the repository
    line: int  # the line of the opening fence (1-based)
    kind: str
    code: str
    not_run: str | None = None  # the reason, when marked
    file: str | None = None  # write the block to this file of the project

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path, repo: Path) -> list[Block]:
    """The fenced blocks of one markdown file, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        indent, kind = match.group(1), match.group(2)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        block = Block(str(path.relative_to(repo)), start + 1, kind, "\n".join(body) + "\n")
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(previous.strip())
        if marker:
            if marker.group(1) == "not run":
                block.not_run = marker.group(2)
            else:
                block.file = marker.group(2)
        found.append(block)
        i += 1
    return found


def console_examples(code: str) -> list[tuple[str, str]]:
    """(command, expected output) of each `$ ` line of a console block."""
    examples: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            examples.append((line[2:], []))
        elif examples:
            examples[-1][1].append(line)
    return [(command, "\n".join(out)) for command, out in examples]


def matches(expected: str, actual: str) -> bool:
    """`...` in the expected text stands for any text (also across lines)."""
    pattern = re.escape(expected.rstrip()).replace(re.escape("..."), r"[\s\S]*?")
    return re.fullmatch(pattern, actual.rstrip()) is not None


__all__ = ["KINDS", "Block", "blocks", "console_examples", "matches"]
