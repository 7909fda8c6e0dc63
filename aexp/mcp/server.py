"""`aexp mcp`: the project's MCP server, over stdio (what Claude Code and most MCP clients start)
or streamable HTTP on loopback.

    serve_stdio(root)               one client: the process that started the server
    serve_http(root, port)          http://127.0.0.1:PORT/mcp, for the owner's clients only

A login node is shared, and loopback alone keeps no other user of the machine out: over HTTP
every request must carry `Authorization: Bearer <secret>`, the secret kept in
`<project>/.aexp/mcp-secret`, a file only its owner can read (made on the first start, mode
0600). A request without it, or with another, is answered 401 before it reaches the MCP
session, and changes nothing.

Errors: a tool's AexpError (bad input, a refused write, a spent token) is the tool's error,
in its own sentence; arguments of the wrong type get one sentence naming the argument; anything
else is a bug of aexp, said in one line (its traceback on the server's stderr). The server goes
on serving either way.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
import traceback
from collections.abc import Callable
from typing import Any

from aexp import __version__
from aexp.agent.history import state_dir

SECRET_FILE = "mcp-secret"
INSTRUCTIONS = (
    "Tools of an aexp project (signac jobs bound to experiment-tracker runs). Reads are free: "
    "status (poll with its cursor: status(since=cursor)), runs, show, curve, diagnose, "
    "sync_plan, run_progress. Every write (create_sweep, run_here, submit, rearm, rerun, "
    "remove, sync) only returns a plan with its cost and a token; call apply_plan(token) to "
    "carry it out. signac.rc's [agent] budget bounds what may start."
)


def _one_sentence(exc: Any, tool: str) -> str:
    """A pydantic ValidationError of a tool's arguments, in one sentence."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "the arguments"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (
        f"{tool}: argument {where!r}: {first.get('msg', 'invalid')}{more}; see the tool's "
        "input schema."
    )


def build_server(root: str) -> Any:
    """The MCP server of the project at `root`, every tool registered (aexp.mcp.tools)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import ValidationError

    from aexp.errors import AexpError
    from aexp.mcp.tools import register

    class Server(MCPServer):
        def publish_output(self, name: str, schema: dict[str, Any]) -> None:
            """Publish `schema` as the tool's output schema (what clients check results
            against); the SDK derives none from a function that returns a dict."""
            self._tool_manager.get_tool(name).fn_metadata.output_schema = schema

        def add_tool(self, fn: Callable[..., Any], **kwargs: Any) -> None:
            super().add_tool(_contained(fn), **kwargs)

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                if isinstance(exc.__cause__, ValidationError):
                    raise ToolError(_one_sentence(exc.__cause__, name)) from None
                raise

    def _contained(fn: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(fn)
        def tool(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except AexpError as exc:
                raise ToolError(" ".join(str(exc).split())) from None
            except OSError as exc:
                where = f" ({exc.filename})" if exc.filename else ""
                raise ToolError(f"{exc.strerror or exc}{where}; nothing more was done.") from None
            except Exception as exc:  # a bug: one line to the agent, the traceback to stderr
                traceback.print_exc(file=sys.stderr)
                raise ToolError(
                    f"internal error in {fn.__name__}: {type(exc).__name__}: {exc}; the server "
                    "goes on (its log has the traceback)."
                ) from None

        return tool

    server = Server(
        "aexp",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )
    register(server, root)
    return server


def serve_stdio(root: str) -> None:
    """Serve the project at `root` over stdin/stdout until the client closes them."""
    build_server(root).run("stdio")


def secret_of(root: str) -> str:
    """The project's MCP secret (`.aexp/mcp-secret`, mode 0600), made on first use. Refuses
    (AexpError) a secret file that others may read."""
    from aexp.errors import AexpError

    path = os.path.join(state_dir(root), SECRET_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            raise AexpError(
                f"{path} may be read by others; make it yours alone (chmod 600 {path}) or delete "
                "it for a new one."
            ) from None
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        token = secrets.token_urlsafe(32)
        fh.write(token + "\n")
    return token


def guarded(app: Any, secret: str) -> Any:
    """The ASGI `app` behind the secret: an HTTP request without `Authorization: Bearer
    <secret>` gets 401 and never reaches it."""
    expected = f"Bearer {secret}".encode()

    async def guard(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                body = b'{"error": "missing or wrong Authorization: Bearer <.aexp/mcp-secret>"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guard


def serve_http(root: str, port: int, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve the project at `root` on http://127.0.0.1:`port`/mcp (streamable HTTP), for
    clients that present the project's secret (`secret_of`). `ready(url)` is called once the
    server listens."""
    import anyio
    import uvicorn

    secret = secret_of(root)
    server = build_server(root)
    app = guarded(server.streamable_http_app(host="127.0.0.1"), secret)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(web.serve)
            while not web.started:
                await anyio.sleep(0.05)
            if ready is not None:
                bound = web.servers[0].sockets[0].getsockname()[1] if web.servers else port
                ready(f"http://127.0.0.1:{bound}/mcp")

    anyio.run(main)


__all__ = ["SECRET_FILE", "build_server", "guarded", "secret_of", "serve_http", "serve_stdio"]
