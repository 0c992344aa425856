"""FastAPI dependencies, as ``Annotated`` aliases the handlers use.

``DbDep``, ``RedisDep``, ``QueueDep``, ``HubDep``, ``SettingsDep``, ``MetricsDep``; ``ReadKey``
(key optional unless READS_REQUIRE_KEY) and ``WriteKey`` (a key with the ``write`` scope). Both
key dependencies also apply the rate limits (per client address, and per key when present).
"""

from __future__ import annotations

from typing import Annotated

from cesar_core.db import Database
from cesar_core.jobs import JobQueue
from cesar_core.redis import RedisClient
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cesar_api.auth import Principal
from cesar_api.errors import RateLimited, Unauthorized
from cesar_api.event_hub import EventHub
from cesar_api.metrics import ApiMetrics
from cesar_api.resources import Resources
from cesar_api.settings import ApiSettings

__all__ = [
    "DbDep",
    "HubDep",
    "MetricsDep",
    "QueueDep",
    "ReadKey",
    "RedisDep",
    "ResourcesDep",
    "SettingsDep",
    "WriteKey",
    "client_address",
    "enforce_rate_limit",
]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key made with `cesar-api-keys create <name>`.",
)


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings(resources: ResourcesDep) -> ApiSettings:
    return resources.settings


async def get_db(resources: ResourcesDep) -> Database:
    return resources.db()


async def get_redis(resources: ResourcesDep) -> RedisClient:
    return resources.redis


async def get_queue(resources: ResourcesDep) -> JobQueue:
    return resources.queue()


async def get_hub(resources: ResourcesDep) -> EventHub:
    return resources.hub


async def get_metrics(resources: ResourcesDep) -> ApiMetrics:
    return resources.metrics


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
RedisDep = Annotated[RedisClient, Depends(get_redis)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
HubDep = Annotated[EventHub, Depends(get_hub)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


_LIMITED = {"key": "API key", "address": "client address", "stream": "client address"}


async def enforce_rate_limit(resources: Resources, scope: str, identity: str) -> None:
    """Spend one request of ``identity``'s budget (scope ``key`` or ``address``); 429 when
    it is spent (``cesar_core.ratelimit``: fixed windows, leased from Redis, fail open)."""
    refusal = await resources.limits.acquire(scope, identity)
    if refusal is None:
        return
    resources.metrics.rate_limited.labels(scope).inc()
    raise RateLimited(
        f"rate limit of {refusal.limit} per {_LIMITED[scope]} exceeded; "
        f"retry in {refusal.retry_after}s",
        refusal.retry_after,
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _principal(
    resources: Resources, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    if credentials is None:
        return None
    return await resources.keys.authenticate(resources.db(), credentials.credentials)


async def require_read(
    request: Request, resources: ResourcesDep, credentials: Credentials
) -> Principal | None:
    await enforce_rate_limit(resources, "address", client_address(request))
    principal = await _principal(resources, credentials)
    if principal is None:
        if resources.settings.reads_require_key:
            raise Unauthorized("reads need an API key here: Authorization: Bearer <key>")
        return None
    resources.keys.require_scope(principal, "read")
    await enforce_rate_limit(resources, "key", str(principal.key_id))
    return principal


async def require_write(
    request: Request, resources: ResourcesDep, credentials: Credentials
) -> Principal:
    await enforce_rate_limit(resources, "address", client_address(request))
    principal = await _principal(resources, credentials)
    if principal is None:
        raise Unauthorized("writes need an API key: Authorization: Bearer <key>")
    resources.keys.require_scope(principal, "write")
    await enforce_rate_limit(resources, "key", str(principal.key_id))
    return principal


ReadKey = Annotated[Principal | None, Depends(require_read)]
WriteKey = Annotated[Principal, Depends(require_write)]
