"""The FastAPI application: Ollama's routes through :class:`~cesar_ollama_proxy.proxy.Proxy`,
plus ``/livez``, ``/readyz`` and ``/metrics``. Everything that connects is built in the
lifespan, never at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from cesar_core.errors import CesarError
from cesar_core.ratelimit import LeasedLimiter
from cesar_core.redis import ping_redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cesar_ollama_proxy.aggregates import Aggregator
from cesar_ollama_proxy.cache import LocalCache, ResponseCache
from cesar_ollama_proxy.errors import ProxyError
from cesar_ollama_proxy.fastredis import create_lean_redis
from cesar_ollama_proxy.metrics import ProxyMetrics
from cesar_ollama_proxy.proxy import Proxy, error_response
from cesar_ollama_proxy.settings import ProxySettings
from cesar_ollama_proxy.upstream import Upstream

__all__ = ["ProxyApp", "create_app"]

log = logging.getLogger(__name__)

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
#: the proxy's own routes (FastAPI's router); every other HTTP request is Ollama's
_OWN_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class ProxyApp(FastAPI):
    """FastAPI for the proxy's own routes and the lifespan; Ollama's routes go straight to
    :meth:`Proxy.serve` as raw ASGI, without routing, dependency and middleware layers
    (they use none of them; this is the hot path)."""

    proxy: Proxy | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = self.proxy
        if proxy is not None and scope["type"] == "http" and scope["path"] not in _OWN_PATHS:
            await proxy.serve(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: ProxySettings, *, upstream_transport: httpx.AsyncBaseTransport | None = None
) -> ProxyApp:
    metrics = ProxyMetrics(max_model_labels=settings.max_model_labels)
    redis_url = settings.redis_url.get_secret_value()
    database_url = settings.database_url.get_secret_value() if settings.database_url else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = create_lean_redis(redis_url, timeout=settings.redis_timeout)
        upstream = Upstream(
            settings.ollama_url,
            max_concurrent=settings.max_concurrent_upstream,
            queue_timeout=settings.queue_timeout_seconds,
            connect_timeout=settings.upstream_connect_timeout,
            read_timeout=settings.upstream_read_timeout,
            transport=upstream_transport,
        )
        metrics.bind_upstream(lambda: upstream.in_flight, lambda: upstream.queued)
        limiter = LeasedLimiter(
            redis,
            prefix=f"{settings.redis_prefix}ratelimit",
            limits={
                "address": settings.address_limits,
                "client": settings.client_limits,
                "model": settings.model_limits,
            },
            on_error=lambda _exc: metrics.redis_error("ratelimit"),
        )
        local = LocalCache(settings.cache_l1_max_bytes, settings.cache_l1_ttl_seconds)
        metrics.bind_local_cache(lambda: local.bytes, lambda: len(local))
        aggregator = Aggregator(
            database_url,
            interval=settings.metrics_flush_seconds,
            on_flush=lambda result: metrics.flushes.labels(result).inc(),
        )
        if not aggregator.enabled:
            log.warning("no DATABASE_URL: llm_cache_metrics will not be written")
        proxy = Proxy(
            settings,
            upstream=upstream,
            cache=ResponseCache(
                redis, settings.cache_ttl_seconds, on_error=metrics.redis_error, local=local
            ),
            limiter=limiter,
            metrics=metrics,
            aggregator=aggregator,
        )
        app.state.proxy = proxy
        assert isinstance(app, ProxyApp)
        app.proxy = proxy
        app.state.redis = redis
        app.state.aggregator = aggregator
        aggregator.start()
        log.info(
            "ollama proxy ready to serve",
            extra={"upstream": settings.ollama_url, "cache_mode": settings.cache_mode},
        )
        try:
            yield
        finally:
            app.proxy = None
            await proxy.drain()
            await aggregator.stop()
            await upstream.aclose()
            await redis.aclose()

    app = ProxyApp(
        title="CESAR Ollama proxy",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.metrics = metrics
    app.state.settings = settings

    @app.exception_handler(ProxyError)
    async def _proxy_error(request: Request, exc: ProxyError) -> Response:
        return error_response(request.method, request.url.path, exc)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        checks = await _readiness(request.app)
        ready = checks["upstream"]["ok"] and checks["redis"]["ok"]
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=_PROMETHEUS_TEXT)

    # Ollama's routes normally bypass FastAPI (ProxyApp.__call__); this route serves them
    # only before the lifespan has built the proxy.
    @app.api_route("/{path:path}", methods=_METHODS, include_in_schema=False)
    async def ollama(request: Request) -> Response:
        proxy: Proxy = request.app.state.proxy
        return await proxy.handle(request)

    return app


async def _readiness(app: FastAPI) -> dict[str, dict[str, Any]]:
    """Upstream and Redis decide readiness; the database is reported but optional (the
    aggregates wait in memory while it is away)."""
    proxy: Proxy = app.state.proxy
    aggregator: Aggregator = app.state.aggregator

    async def upstream() -> dict[str, Any]:
        try:
            return {"ok": True, "version": await proxy.upstream.ping()}
        except CesarError as exc:
            return {"ok": False, "error": str(exc)}

    async def redis() -> dict[str, Any]:
        try:
            return {"ok": True, "ms": round(await ping_redis(app.state.redis), 2)}
        except CesarError as exc:
            return {"ok": False, "error": str(exc)}

    async def database() -> dict[str, Any]:
        if not aggregator.enabled:
            return {"ok": None, "state": "disabled", "pending_buckets": 0}
        state: dict[str, Any] = {"pending_buckets": len(aggregator.pending)}
        try:
            db = await aggregator._database()
            state.update(ok=True, state="ok", ms=round(await db.ping(), 2))
        except (CesarError, OSError) as exc:
            state.update(ok=False, state="unavailable", error=str(exc))
        return state

    up, rd, dbs = await asyncio.gather(upstream(), redis(), database())
    return {"upstream": up, "redis": rd, "database": dbs}
