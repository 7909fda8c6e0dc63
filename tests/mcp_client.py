"""Drive `aexp mcp` with the MCP SDK's own client, as an agent would (tests only).

    async with serve(root, env) as agent:
        doc = await agent.call("status")              # the structured result, validated
        error = await agent.fails("show", job_id="x")  # the tool error's text

Every result is checked twice: by the SDK client itself against the tool's published output
schema (it raises on a mismatch), and by aexp.contract.check against the document's own schema.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from aexp.contract import check


class Agent:
    """One client session with the server."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        """Call `tool`; its structured result, checked. AssertionError if the tool failed."""
        result = await self.session.call_tool(tool, args)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert not result.is_error, f"{tool}({args}) failed: {text}"
        doc = result.structured_content
        check(doc)
        return doc

    async def fails(self, tool: str, **args: Any) -> str:
        """Call `tool`, which must fail; the error's text (one line, without the SDK's prefix
        "Error executing tool <tool>: ")."""
        result = await self.session.call_tool(tool, args)
        assert result.is_error, f"{tool}({args}) did not fail: {result.structured_content}"
        text = " ".join(getattr(c, "text", "") for c in result.content).strip()
        assert "\n" not in text and "Traceback" not in text, text
        return text.removeprefix(f"Error executing tool {tool}: ")


@contextlib.asynccontextmanager
async def serve(root: Path, env: dict[str, str], errlog: Any = None) -> AsyncIterator[Agent]:
    """`aexp mcp -C root` over stdio, started by the SDK's client, and a session with it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aexp.cli", "-C", str(root), "mcp"],
        env=env,
        cwd=str(root),
    )
    log = errlog or open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        async with (
            stdio_client(params, errlog=log) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield Agent(session)
    finally:
        if errlog is None:
            log.close()
