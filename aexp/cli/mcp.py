"""`aexp mcp`: serve the project to an AI agent over MCP (aexp.mcp; docs/agents.md). Needs the
`[mcp]` extra (the official MCP SDK)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from aexp.cli.parsing import Commands
from aexp.cli.resolve import _project_dir
from aexp.errors import AexpError


def cmd_mcp(args: argparse.Namespace) -> int:
    from aexp.jobs import find_project_root

    if importlib.util.find_spec("mcp") is None:
        raise AexpError(
            "aexp mcp needs the MCP SDK: pip install 'agentic-experiments[mcp]' (in this venv)."
        )
    # Claude Code tells the servers it starts where the project is.
    root = find_project_root(_project_dir(args) or os.environ.get("CLAUDE_PROJECT_DIR") or None)
    if args.http is None:
        from aexp.mcp.server import serve_stdio

        serve_stdio(root)
        return 0
    from aexp.mcp.server import SECRET_FILE, serve_http

    def ready(url: str) -> None:
        print(
            f"aexp mcp: serving {root} at {url}; clients send 'Authorization: Bearer <secret>', "
            f"the secret in {root}/.aexp/{SECRET_FILE} (readable by you alone).",
            file=sys.stderr,
            flush=True,
        )

    serve_http(root, args.http, ready=ready)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number 0..65535 (0: any free), not {text!r}"
        )
    return port


def register(commands: Commands) -> None:
    """Add `aexp mcp`: its options, help text and examples."""
    sub = commands.add(
        "mcp",
        "serve this project to an AI agent over MCP (stdio, or HTTP on loopback)",
        "  aexp mcp -C /path/to/project      (stdio: what an MCP client starts)\n"
        "  claude mcp add aexp -- aexp mcp -C /path/to/project     (Claude Code)\n"
        "  aexp mcp --http 8765        (http://127.0.0.1:8765/mcp; clients present the secret\n"
        "                               in .aexp/mcp-secret as 'Authorization: Bearer ...')\n\n"
        "Reads are free; every write returns a plan and a token, carried out by apply_plan;\n"
        "[agent] in signac.rc is the budget (docs/agents.md).",
        cmd_mcp,
    )
    sub.add_argument(
        "--http",
        type=_port,
        metavar="PORT",
        help="serve streamable HTTP on 127.0.0.1:PORT instead of stdio (0: any free port)",
    )


__all__ = ["cmd_mcp", "register"]
