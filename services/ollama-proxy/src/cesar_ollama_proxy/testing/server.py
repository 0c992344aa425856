"""Run an ASGI app with uvicorn inside the current event loop, on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
from starlette.types import ASGIApp

__all__ = ["free_port", "serve_app", "wait_until"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApp, *, host: str = "127.0.0.1", **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) until the block ends; yields its base URL.
    ``options`` go to ``uvicorn.Config`` (e.g. the proxy options ``cesar-ollama-proxy`` uses)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped while starting")
            await asyncio.sleep(0.005)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def wait_until(
    predicate: Callable[[], object | Awaitable[object]], what: str, *, attempts: int = 1000
) -> None:
    """Poll ``predicate()`` (sync or async) every 10 ms until it is true; fail naming ``what``.
    For tests that wait on an event they cannot be told about; never asserts a duration."""
    for _ in range(attempts):
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")
