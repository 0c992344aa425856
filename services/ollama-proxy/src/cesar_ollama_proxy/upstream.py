"""The connector to Ollama: one httpx client, the bound on concurrent model work, and the
translation of httpx errors into the proxy's tree (502 unreachable, 504 timeout)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping

import httpx
from cesar_core.redaction import describe_target

from cesar_ollama_proxy.errors import ProxyBusy, UpstreamTimeout, UpstreamUnavailable

__all__ = ["Upstream", "UpstreamResponse", "UpstreamStreamError"]

log = logging.getLogger(__name__)


class UpstreamStreamError(Exception):
    """The upstream failed after the answer started (read timeout, connection lost)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamResponse:
    """An open upstream answer; :meth:`aclose` closes it and frees its slot, exactly once."""

    def __init__(self, response: httpx.Response, release: Callable[[], None] | None) -> None:
        self.response = response
        self._release = release
        self._closed = False

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers

    async def read(self) -> bytes:
        try:
            return await self.response.aread()
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("Ollama did not finish its answer in time") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"Ollama closed the connection: {_reason(exc)}") from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_bytes():
                yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamStreamError("Ollama stopped sending (read timeout)", "timeout") from exc
        except httpx.TransportError as exc:
            raise UpstreamStreamError(
                f"lost the connection to Ollama mid-answer: {_reason(exc)}", "stream"
            ) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.response.aclose()
        except Exception as exc:  # closing a broken stream must not mask the real outcome
            log.debug("closing the upstream response: %s", exc)
        finally:
            if self._release is not None:
                self._release()


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class Upstream:
    def __init__(
        self,
        base_url: str,
        *,
        max_concurrent: int,
        queue_timeout: float,
        connect_timeout: float,
        read_timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        #: what errors say about the upstream: scheme, host and port, never userinfo
        self.target = f"{httpx.URL(base_url).scheme}://{describe_target(base_url)}"
        self.max_concurrent = max_concurrent
        self.queue_timeout = queue_timeout
        self._slots = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0
        self.queued = 0
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=60.0, pool=None)
        # Proxied requests go straight to the transport (httpcore's keep-alive pool): the
        # client layers above it (URL merging, default headers, cookies, auth, redirects,
        # event hooks) do nothing a proxy wants and cost a noticeable part of a miss.
        self.transport = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            http1=True,
            http2=False,
        )
        self._base = httpx.URL(base_url)
        self._prefix = self._base.raw_path.rstrip(b"/")
        self._extensions = {"timeout": timeout.as_dict()}
        # for ping() and anything not on the hot path
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, transport=self.transport, follow_redirects=False
        )

    async def _acquire(self) -> Callable[[], None]:
        self.queued += 1
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise ProxyBusy(
                f"all {self.max_concurrent} upstream slots stayed busy for "
                f"{self.queue_timeout:g}s; try again later",
                retry_after=1,
            ) from exc
        finally:
            self.queued -= 1
        self.in_flight += 1

        def release() -> None:
            self.in_flight -= 1
            self._slots.release()

        return release

    async def open(
        self,
        method: str,
        path: bytes,
        *,
        query: bytes,
        headers: Mapping[str, str],
        content: bytes | AsyncIterable[bytes] | None,
        bounded: bool,
    ) -> UpstreamResponse:
        """Send the request and return once the status and headers are in (body unread).
        ``path`` is the raw (still percent-encoded) path, forwarded as is."""
        release = await self._acquire() if bounded else None
        raw = self._prefix + path + (b"?" + query if query else b"")
        try:
            request = httpx.Request(
                method,
                self._base.copy_with(raw_path=raw),
                headers=headers,
                content=content,
                extensions=self._extensions,
            )
            response = await self.transport.handle_async_request(request)
            response.request = request
        except BaseException as exc:
            if release is not None:
                release()
            if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
                raise UpstreamUnavailable(
                    f"cannot reach Ollama at {self.target}: {_reason(exc)}"
                ) from exc
            if isinstance(exc, httpx.TimeoutException):
                raise UpstreamTimeout("Ollama did not answer in time") from exc
            if isinstance(exc, httpx.TransportError):
                raise UpstreamUnavailable(f"Ollama closed the connection: {_reason(exc)}") from exc
            raise
        return UpstreamResponse(response, release)

    async def ping(self, timeout: float = 2.0) -> str:
        """Ollama's version; raises the proxy's errors when it does not answer."""
        try:
            response = await self.client.get("/api/version", timeout=timeout)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"Ollama did not answer within {timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(
                f"cannot reach Ollama at {self.target}: {_reason(exc)}"
            ) from exc
        if response.status_code != 200:
            raise UpstreamUnavailable(f"Ollama answered {response.status_code} to /api/version")
        try:
            return str(response.json().get("version", "unknown"))
        except (ValueError, AttributeError) as exc:
            raise UpstreamUnavailable("Ollama's /api/version is not JSON") from exc

    async def aclose(self) -> None:
        await self.client.aclose()
