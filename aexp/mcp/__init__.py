"""The MCP server of an aexp project (`aexp mcp`, the `[mcp]` extra): tools over the library
the CLI uses, reads free, every write planned and carried out by its token.

    server.py   the server: stdio, or streamable HTTP on loopback behind the owner's secret
    tools.py    the tools and the documents they return (aexp.contract)

docs/agents.md tells how to connect Claude Code (or any MCP client) and what each tool does.
"""
