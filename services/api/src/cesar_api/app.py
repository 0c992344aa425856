"""The FastAPI application: ``create_app(settings)`` builds it; the lifespan opens and closes
the pool (retried while the database is unreachable), Redis, the job queue and the event
fan-out reader."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cesar_core.jobs import JobRegistry, load_registry
from cesar_core.ratelimit import LeasedLimiter, parse_limits
from cesar_core.redis import create_redis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from cesar_api import SERVICE_NAME, __version__
from cesar_api.address_slots import AddressSlots
from cesar_api.database import DatabaseHolder
from cesar_api.errors import ErrorResponse, install_error_handlers
from cesar_api.event_hub import EventHub
from cesar_api.metrics import ApiMetrics
from cesar_api.middleware import BodyLimitMiddleware, MetricsMiddleware
from cesar_api.resources import Resources
from cesar_api.routes import (
    a2a,
    agents,
    events,
    financial,
    graph,
    health,
    ingestions,
    jobs,
    memories,
    monitoring,
    reputation,
    routing,
    workflows,
)
from cesar_api.settings import ApiSettings

__all__ = ["ERROR_RESPONSES", "create_app"]

log = logging.getLogger(__name__)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# documented on every /api/v1 operation, in the one error shape
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("the body is not valid JSON, or not UTF-8"),
    401: _error("no API key, or an unknown one (writes always; reads when READS_REQUIRE_KEY)"),
    403: _error("the API key was revoked or lacks the scope"),
    404: _error("no such resource"),
    409: _error("conflicts with the current state (duplicate name, job already final)"),
    413: _error("request body larger than API_MAX_BODY_BYTES"),
    422: _error("invalid input: the message names the field and the problem"),
    429: _error("rate limit exceeded; see the Retry-After header"),
    503: _error(
        "the database or Redis is unavailable, or the query ran past API_STATEMENT_TIMEOUT_MS "
        "(code query_timeout)"
    ),
}

DESCRIPTION = """
CESAR API: agents and their events (with a live WebSocket stream at `/api/v1/events/stream`),
jobs, workflows, financial data, ingestions, sync status, monitoring views, LLM cache metrics,
the knowledge graph, and the Agent2Agent protocol (`/a2a/agents/{agent_id}`, with each agent's
card at `/a2a/agents/{agent_id}/.well-known/agent-card.json`).

Writes need `Authorization: Bearer <API key>` (made with `cesar-api-keys create <name>`).
Every error has one shape: `{"error": {"code": "...", "message": "...", "details": ...}}`.
"""


def create_app(settings: ApiSettings, *, registry: JobRegistry | None = None) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""
    metrics = ApiMetrics()
    database_url = settings.require_database_url()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder = DatabaseHolder(
            database_url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            max_delay=settings.db_connect_max_delay,
            statement_timeout_ms=settings.statement_timeout_ms,
        )
        redis = create_redis(settings.redis_url.get_secret_value())
        # its own client with short timeouts: a slow Redis delays a request by at most ~1 s
        limits_redis = create_redis(settings.redis_url.get_secret_value(), timeout=1.0)
        enabled = settings.rate_limit_enabled
        limits = LeasedLimiter(
            limits_redis,
            prefix=settings.rate_limit_prefix,
            limits={
                "key": parse_limits(settings.rate_limit_per_key) if enabled else [],
                "address": parse_limits(settings.rate_limit_per_address) if enabled else [],
                "stream": parse_limits(settings.ws_connect_rate) if enabled else [],
            },
            on_error=lambda _exc: metrics.rate_limit_errors.inc(),
        )
        hub = EventHub(
            redis,
            settings.event_stream,
            metrics,
            queue_size=settings.ws_queue_size,
            max_clients=settings.ws_max_clients,
            ping_interval=settings.ws_ping_interval,
        )
        app.state.resources = Resources(
            settings=settings,
            metrics=metrics,
            database=holder,
            redis=redis,
            limits=limits,
            hub=hub,
            registry=registry if registry is not None else load_registry(),
            streams=AddressSlots(settings.ws_max_per_address),
        )

        def pool_stats() -> tuple[int, int, int] | None:
            if holder.db is None:
                return None
            stats = holder.db.stats()
            return stats.size, stats.free, stats.max

        metrics.watch_pool(pool_stats)
        await holder.start()
        await hub.start()
        log.info("%s %s ready on %s", SERVICE_NAME, __version__, settings.api_url)
        try:
            yield
        finally:
            await hub.close()
            await limits_redis.aclose()
            await redis.aclose()
            await holder.close()

    app = FastAPI(
        title="CESAR API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (agents, events, jobs, workflows, financial, ingestions, monitoring, graph, a2a):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    for module in (memories, reputation, routing):  # the brain: memory, reputation, routing
        app.include_router(module.router, responses=ERROR_RESPONSES)
    # outermost last: metrics see every response, including 413s
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
