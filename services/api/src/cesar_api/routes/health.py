"""/health (the shape operators know), /livez, /readyz and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Literal, TypeVar

from cesar_core.redis import ping_redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from cesar_api import SERVICE_NAME, __version__
from cesar_api.database import read
from cesar_api.deps import ResourcesDep
from cesar_api.repositories import heartbeats
from cesar_api.resources import Resources

__all__ = ["router"]

router = APIRouter(tags=["health"])
T = TypeVar("T")

Status = Literal["healthy", "degraded", "unhealthy"]


class DatabaseComponent(BaseModel):
    status: Literal["healthy", "unhealthy"]
    database: Literal["cockroachdb", "postgresql"] | None
    version: str | None = None
    ping_ms: float | None
    pool_size: int | None
    pool_free: int | None
    pool_max: int | None
    error: str | None = None


class RedisComponent(BaseModel):
    status: Literal["healthy", "unhealthy"]
    ping_ms: float | None
    error: str | None = None


class WorkerComponent(BaseModel):
    """``stale`` when the newest heartbeat is older than WORKER_STALE_SECONDS, ``absent`` when
    no worker ever reported, ``unknown`` when the database cannot be asked."""

    status: Literal["healthy", "stale", "absent", "unknown"]
    last_seen: datetime | None
    age_seconds: float | None = None


class ApiComponent(BaseModel):
    status: Literal["healthy"] = "healthy"


class Components(BaseModel):
    database: DatabaseComponent
    redis: RedisComponent
    worker: WorkerComponent
    api: ApiComponent


class Health(BaseModel):
    status: Status
    timestamp: datetime
    service: str
    version: str
    components: Components


class Liveness(BaseModel):
    status: Literal["alive"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]


async def _bounded(work: Awaitable[T], timeout: float) -> T:
    async with asyncio.timeout(timeout):
        return await work


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


async def _database(resources: Resources, timeout: float) -> DatabaseComponent:
    holder = resources.database
    db = holder.db
    if db is None:
        return DatabaseComponent(
            status="unhealthy",
            database=None,
            ping_ms=None,
            pool_size=None,
            pool_free=None,
            pool_max=None,
            error=holder.last_error or "not connected yet",
        )
    stats = db.stats()
    try:
        ping_ms: float | None = await _bounded(db.ping(timeout), timeout)
        error = None
    except Exception as exc:
        ping_ms, error = None, _reason(exc)
    return DatabaseComponent(
        status="healthy" if error is None else "unhealthy",
        database=db.engine.name,
        version=db.engine.version,
        ping_ms=round(ping_ms, 3) if ping_ms is not None else None,
        pool_size=stats.size,
        pool_free=stats.free,
        pool_max=stats.max,
        error=error,
    )


async def _redis(resources: Resources, timeout: float) -> RedisComponent:
    try:
        ping_ms = await _bounded(ping_redis(resources.redis, timeout), timeout)
    except Exception as exc:
        return RedisComponent(status="unhealthy", ping_ms=None, error=_reason(exc))
    return RedisComponent(status="healthy", ping_ms=round(ping_ms, 3))


async def _worker(resources: Resources, timeout: float) -> WorkerComponent:
    db = resources.database.db
    if db is None:
        return WorkerComponent(status="unknown", last_seen=None)
    try:
        last_seen = await _bounded(read(db, heartbeats.newest_worker_seen), timeout)
    except Exception:
        return WorkerComponent(status="unknown", last_seen=None)
    if last_seen is None:
        return WorkerComponent(status="absent", last_seen=None)
    age = (datetime.now(UTC) - last_seen).total_seconds()
    fresh = age <= resources.settings.worker_stale_seconds
    return WorkerComponent(
        status="healthy" if fresh else "stale", last_seen=last_seen, age_seconds=round(age, 3)
    )


@router.get(
    "/health",
    response_model=Health,
    summary="Health of the API and what it depends on",
    responses={503: {"model": Health, "description": "the database or Redis is down"}},
)
async def health(resources: ResourcesDep) -> JSONResponse:
    timeout = resources.settings.health_probe_timeout
    database, redis, worker = await asyncio.gather(
        _database(resources, timeout), _redis(resources, timeout), _worker(resources, timeout)
    )
    status: Status
    if database.status != "healthy" or redis.status != "healthy":
        status = "unhealthy"
    elif worker.status != "healthy" or not resources.hub.connected:
        status = "degraded"
    else:
        status = "healthy"
    body = Health(
        status=status,
        timestamp=datetime.now(UTC),
        service=SERVICE_NAME,
        version=__version__,
        components=Components(database=database, redis=redis, worker=worker, api=ApiComponent()),
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=503 if status == "unhealthy" else 200
    )


_ALIVE = b'{"status":"alive"}'


@router.get("/livez", response_model=Liveness, summary="The process is up (no dependencies)")
async def livez() -> Response:
    return Response(_ALIVE, media_type="application/json")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Ready for traffic: the database and Redis answer",
    responses={503: {"model": Readiness, "description": "a dependency is down"}},
)
async def readyz(resources: ResourcesDep) -> JSONResponse:
    timeout = resources.settings.health_probe_timeout
    database, redis = await asyncio.gather(
        _database(resources, timeout), _redis(resources, timeout)
    )
    checks = {"database": database.status == "healthy", "redis": redis.status == "healthy"}
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(resources: ResourcesDep) -> Response:
    return Response(generate_latest(resources.metrics.registry), media_type=CONTENT_TYPE_LATEST)
