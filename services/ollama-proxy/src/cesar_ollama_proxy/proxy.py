"""The proxy handler: one Ollama request in, one answer out, with the cache, the limits,
the upstream bound and the bookkeeping around it.

Order for model work: address and client limits -> body read (bounded) and checked (JSON
object, model name) -> cache lookup (the in-process copy, then Redis) -> hit: the stored
answer; miss: model limit -> an upstream slot -> Ollama -> relay (chunk by chunk) -> store
when complete. Every other Ollama route passes through with the address and client limits
only. The limits come first so a refused client costs no body read and no parse.
Limits are spent from leases (``cesar_core.ratelimit``), so most requests ask Redis nothing
for them; a hit in the in-process copy makes no Redis round trip at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cesar_core.ratelimit import LeasedLimiter
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from cesar_ollama_proxy.aggregates import Aggregator
from cesar_ollama_proxy.cache import (
    CacheDecision,
    CachedResponse,
    CacheStatus,
    ResponseCache,
    decide,
    effective_stream,
)
from cesar_ollama_proxy.errors import (
    NotFound,
    ProxyError,
    RateLimited,
    RequestTooLarge,
)
from cesar_ollama_proxy.metrics import ProxyMetrics
from cesar_ollama_proxy.observer import ResponseObserver
from cesar_ollama_proxy.ratelimit import address_key, client_key, rate_limited
from cesar_ollama_proxy.request_body import model_name, parse_object
from cesar_ollama_proxy.routes import Route, classify
from cesar_ollama_proxy.settings import ProxySettings
from cesar_ollama_proxy.upstream import Upstream, UpstreamResponse, UpstreamStreamError

__all__ = ["Exchange", "Proxy", "error_body", "error_line", "error_response"]

log = logging.getLogger("cesar_ollama_proxy.requests")

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_DROP_REQUEST = _HOP_BY_HOP | {"host", "content-length", "accept-encoding", "x-cache"}
_DROP_RESPONSE = _HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}
_PROMPT_LOG_CHARS = 2000


def error_body(route: Route | None, message: str, status: int) -> dict[str, Any]:
    """Ollama's error shape; on ``/v1`` the OpenAI shape Ollama itself uses there."""
    if route is not None and route.openai:
        kind = "invalid_request_error" if 400 <= status < 500 else "api_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"error": message}


def error_response(method: str, path: str, exc: ProxyError) -> Response:
    """A :class:`ProxyError` as Ollama's (or on ``/v1`` OpenAI's) error answer."""
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(
        error_body(classify(method, path), exc.message, exc.status_code),
        status_code=exc.status_code,
        headers=headers,
    )


def error_line(route: Route, message: str) -> bytes:
    """A mid-stream error as the stream's last line (NDJSON) or event (SSE)."""
    body = json.dumps(error_body(route, message, 502)).encode()
    return b"data: " + body + b"\n\n" if route.stream_format == "sse" else body + b"\n"


@dataclass(slots=True)
class Exchange:
    """One request's bookkeeping, finished exactly once."""

    route: Route
    started: float
    model: str = ""
    cache: CacheStatus | None = None
    attempted: bool = False
    first_chunk_at: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    payload: dict[str, Any] | None = field(default=None, repr=False)
    finished: bool = False


class RelayResponse(StreamingResponse):
    """A streamed answer that always closes its upstream, even when the client leaves."""

    def __init__(self, relay: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(relay, **kwargs)
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self._relay, "aclose", None)
            if aclose is not None:
                await aclose()


class CachedAnswer(Response):
    """A cache hit, sent as two raw ASGI messages (the hot path of a hit)."""

    def __init__(self, cached: CachedResponse) -> None:
        self.status_code = 200
        self.body = cached.body
        self.raw_headers = [
            (b"content-type", cached.content_type.encode("latin-1")),
            (b"content-length", str(len(cached.body)).encode()),
            (b"x-cache", b"HIT"),
        ]
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


class Proxy:
    def __init__(
        self,
        settings: ProxySettings,
        *,
        upstream: Upstream,
        cache: ResponseCache,
        limiter: LeasedLimiter,
        metrics: ProxyMetrics,
        aggregator: Aggregator,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.cache = cache
        self.limiter = limiter
        self.metrics = metrics
        self.aggregator = aggregator
        self._background: set[asyncio.Task[None]] = set()

    # -- entry ----------------------------------------------------------------------------

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Raw ASGI entry for Ollama's routes (no framework routing on the hot path)."""
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except ProxyError as exc:
            response = error_response(scope["method"], scope["path"], exc)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        scope = request.scope
        method, path = scope["method"], scope["path"]
        route = classify(method, path)
        if route is None:
            raise NotFound(f"{method} {path} is not an Ollama route")
        ex = Exchange(route=route, started=time.perf_counter())
        try:
            return await self._handle(request, ex)
        except ProxyError as exc:
            if isinstance(exc, RateLimited):
                self.metrics.rate_limited.labels(exc.scope).inc()
            if exc.outcome in ("unreachable", "timeout"):
                self.metrics.upstream_errors.labels(route.name, exc.outcome).inc()
            self.finish(ex, exc.outcome, exc.status_code)
            raise

    async def _handle(self, request: Request, ex: Exchange) -> Response:
        route = ex.route
        headers = request.headers
        peer = request.scope.get("client")
        address = peer[0] if peer else None
        # an unchecked bearer token picks the client key, so the address is always limited too
        for limit, identity in (
            ("address", address_key(address)),
            ("client", client_key(headers.get("authorization"), address)),
        ):
            refusal = await self.limiter.acquire(limit, identity)
            if refusal is not None:
                raise rate_limited(refusal)

        content: bytes | AsyncIterator[bytes]
        payload: dict[str, Any] = {}
        if route.json_body:
            content = await self._read_body(request)
            payload = parse_object(content)
            ex.model = model_name(payload)
            ex.payload = payload
        else:
            content = request.stream()

        decision = CacheDecision("SKIP")
        if route.inference:
            decision = decide(
                route,
                payload,
                mode=self.settings.cache_mode,
                cache_control=headers.get("cache-control", ""),
                x_cache=headers.get("x-cache", ""),
                prefix=self.settings.redis_prefix,
            )
            ex.cache = decision.status

        if decision.key is not None:
            cached = await self.cache.get(decision.key)
            if cached is not None:
                ex.cache = "HIT"
                self.finish(ex, "ok", 200)
                return CachedAnswer(cached)
        if route.inference:
            refusal = await self.limiter.acquire("model", ex.model or "-")
            if refusal is not None:
                raise rate_limited(refusal)

        forward = {k: v for k, v in headers.items() if k not in _DROP_REQUEST}
        ex.attempted = True
        scope = request.scope
        up = await self.upstream.open(
            scope["method"],
            scope.get("raw_path") or scope["path"].encode(),
            query=scope["query_string"],
            headers=forward,
            content=content,
            bounded=route.bounded,
        )
        try:
            return await self._answer(ex, up, decision, streamed=effective_stream(route, payload))
        except BaseException:
            await up.aclose()
            raise

    # -- answers --------------------------------------------------------------------------

    def _response_headers(self, up: UpstreamResponse, ex: Exchange) -> dict[str, str]:
        out = {k: v for k, v in up.headers.items() if k.lower() not in _DROP_RESPONSE}
        if ex.cache is not None:
            out["X-Cache"] = ex.cache
        return out

    async def _answer(
        self, ex: Exchange, up: UpstreamResponse, decision: CacheDecision, *, streamed: bool
    ) -> Response:
        route = ex.route
        headers = self._response_headers(up, ex)
        media_type = up.headers.get("content-type")
        length = up.headers.get("content-length")
        buffered = (
            length is not None
            and length.isdigit()
            and int(length) <= max(self.settings.cache_max_bytes, 1 << 20)
        )
        if up.status_code != 200 or buffered:
            body = await up.read()
            await up.aclose()
            observer = ResponseObserver(route.stream_format, streamed=False)
            observer.feed_body(body)
            background = None
            if up.status_code == 200 and decision.key is not None and observer.done:
                background = BackgroundTask(
                    self.cache.put, decision.key, CachedResponse(media_type or "", body)
                )
            self._account(ex, observer, up.status_code)
            return Response(
                body,
                status_code=up.status_code,
                headers=headers,
                media_type=media_type,
                background=background,
            )
        return RelayResponse(
            self._relay(ex, up, decision, streamed=streamed, media_type=media_type or ""),
            status_code=up.status_code,
            headers=headers,
            media_type=media_type,
        )

    async def _relay(
        self,
        ex: Exchange,
        up: UpstreamResponse,
        decision: CacheDecision,
        *,
        streamed: bool,
        media_type: str,
    ) -> AsyncIterator[bytes]:
        route = ex.route
        observer = ResponseObserver(route.stream_format, streamed=streamed)
        keep: list[bytes] | None = [] if decision.key is not None or not streamed else None
        kept = 0
        limit = self.settings.cache_max_bytes
        ended_with_newline = True
        outcome: str | None = None
        try:
            async for chunk in up.chunks():
                if not chunk:
                    continue
                if ex.first_chunk_at is None:
                    ex.first_chunk_at = time.perf_counter()
                yield chunk
                ended_with_newline = chunk.endswith(b"\n")
                if streamed:
                    observer.feed_chunk(chunk)
                if keep is not None:
                    kept += len(chunk)
                    if kept > limit:
                        keep = None
                    else:
                        keep.append(chunk)
            if streamed:
                observer.finish()
            elif keep is not None:
                observer.feed_body(b"".join(keep))
            if decision.key is not None and keep is not None and observer.done:
                self._spawn(
                    self.cache.put(decision.key, CachedResponse(media_type, b"".join(keep)))
                )
            self._account(ex, observer, 200)
            outcome = "done"
        except UpstreamStreamError as exc:
            self.metrics.upstream_errors.labels(route.name, exc.kind).inc()
            outcome = "upstream_error"
            self.finish(ex, "upstream_error", 200)
            yield (b"" if ended_with_newline else b"\n") + error_line(route, str(exc))
        finally:
            await up.aclose()
            if outcome is None:
                self.finish(ex, "cancelled", 499)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _account(self, ex: Exchange, observer: ResponseObserver, status: int) -> None:
        ex.prompt_tokens = observer.prompt_tokens
        ex.completion_tokens = observer.completion_tokens
        if status >= 500:
            self.metrics.upstream_errors.labels(ex.route.name, "status").inc()
            outcome = "upstream_error"
        elif status >= 400:
            outcome = "client_error"
        elif observer.error is not None:
            self.metrics.upstream_errors.labels(ex.route.name, "stream").inc()
            outcome = "upstream_error"
        else:
            outcome = "ok"
        self.finish(ex, outcome, status)

    # -- bookkeeping ----------------------------------------------------------------------

    def finish(self, ex: Exchange, outcome: str, status: int) -> None:
        if ex.finished:
            return
        ex.finished = True
        now = time.perf_counter()
        elapsed = now - ex.started
        route = ex.route.name
        m = self.metrics
        model = m.model_label(ex.model)
        cache = (ex.cache or "-").lower()
        m.child(m.requests, route, model, outcome).inc()
        m.child(m.latency, route, cache).observe(elapsed)
        if ex.first_chunk_at is not None:
            m.child(m.ttft, route, model).observe(ex.first_chunk_at - ex.started)
        if ex.prompt_tokens:
            m.child(m.tokens, model, "prompt").inc(ex.prompt_tokens)
        if ex.completion_tokens:
            m.child(m.tokens, model, "completion").inc(ex.completion_tokens)
        if ex.cache is not None:
            m.child(m.cache, route, cache).inc()
        hit = ex.cache == "HIT"
        if ex.route.inference and (hit or ex.attempted):
            self.aggregator.record(
                ex.model,
                hit=hit,
                latency_ms=elapsed * 1000,
                prompt_tokens=ex.prompt_tokens,
                completion_tokens=ex.completion_tokens,
                error=outcome not in ("ok", "cancelled"),
            )
        if (ex.route.inference or outcome != "ok") and log.isEnabledFor(logging.INFO):
            extra: dict[str, Any] = {
                "route": route,
                "model": ex.model,
                "status": status,
                "outcome": outcome,
                "cache": ex.cache,
                "latency_ms": round(elapsed * 1000, 2),
                "prompt_tokens": ex.prompt_tokens,
                "completion_tokens": ex.completion_tokens,
            }
            if self.settings.log_prompts and ex.payload is not None:
                extra["request"] = json.dumps(ex.payload, ensure_ascii=False)[:_PROMPT_LOG_CHARS]
            log.info("%s %s %s", route, status, outcome, extra=extra)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"the request body is larger than {limit} bytes")
        parts: list[bytes] = []
        size = 0
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise RequestTooLarge(f"the request body is larger than {limit} bytes")
            parts.append(part)
        return b"".join(parts)

    async def drain(self) -> None:
        """Wait for cache writes still in flight (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
