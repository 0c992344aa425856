"""/health, /livez, /readyz, /metrics; 503 when the database stops and 200 when it returns."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from cesar_api.app import create_app
from cesar_api.settings import ApiSettings
from cesar_core.db import Database, connect
from cesar_core.testing import admin_url, database_named, drop_database

from .conftest import client_for, free_port

HEARTBEAT = """
INSERT INTO worker_heartbeats (worker_id, hostname, last_seen_at) VALUES ($1, 'test', $2)
ON CONFLICT (worker_id) DO UPDATE SET last_seen_at = excluded.last_seen_at
"""


@pytest.mark.engine("postgresql", reason="asserts the engine name 'postgresql'")
async def test_health_shape_and_worker_component(client: httpx.AsyncClient, db: Database) -> None:
    body = (await client.get("/health")).json()
    assert body["service"] == "multi-agent-learning-api"
    assert body["version"]
    datetime.fromisoformat(body["timestamp"])
    database = body["components"]["database"]
    assert database["status"] == "healthy"
    assert database["database"] == "postgresql"
    assert {"ping_ms", "pool_size", "pool_free", "pool_max"} <= database.keys()
    assert database["pool_max"] == 5
    assert body["components"]["redis"]["status"] == "healthy"
    assert body["components"]["api"] == {"status": "healthy"}
    # no worker ever reported: degraded, still 200
    assert body["components"]["worker"]["status"] == "absent"
    assert body["status"] == "degraded"

    async with db.connection() as conn:
        await conn.execute(HEARTBEAT, "w1", datetime.now(UTC))
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    assert response.json()["components"]["worker"]["status"] == "healthy"

    async with db.connection() as conn:
        await conn.execute(HEARTBEAT, "w1", datetime.now(UTC) - timedelta(hours=1))
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["components"]["worker"]["status"] == "stale"
    assert response.json()["components"]["worker"]["last_seen"] is not None


async def test_livez_readyz_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/livez")).json() == {"status": "alive"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "redis": True}}
    await client.get("/api/v1/agents")
    await client.get("/api/v1/agents/not-a-uuid")
    text = (await client.get("/metrics")).text
    assert 'cesar_api_requests_total{method="GET",route="/api/v1/agents",status="200"}' in text
    assert 'route="/api/v1/agents/{agent_id}",status="422"' in text
    assert "cesar_api_request_duration_seconds_bucket" in text
    assert "cesar_api_db_pool_max 5.0" in text
    assert "cesar_api_websocket_connections" in text
    assert "cesar_api_events_published_total" in text


async def test_redis_down_is_unhealthy_503(
    make_settings: Callable[..., ApiSettings],
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with client_for(create_app(settings)) as client:
        response = await client.get("/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unhealthy"
        assert body["components"]["redis"]["status"] == "unhealthy"
        assert body["components"]["database"]["status"] == "healthy"
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/livez")).status_code == 200


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.engine(
    "postgresql", reason="CREATE DATABASE ... TEMPLATE, ALLOW_CONNECTIONS, pg_terminate_backend"
)
async def test_503_while_database_refuses_then_200(
    make_settings: Callable[..., ApiSettings], template_database_url: str
) -> None:
    """A fresh database of our own: terminate its sessions and refuse connections, then allow."""
    name = f"cesar_api_stop_{uuid.uuid4().hex[:10]}"
    template = urlsplit(template_database_url).path.lstrip("/")
    admin = await connect(admin_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        settings = make_settings(database_url=database_named(admin_url(), name))
        async with client_for(create_app(settings)) as client:
            assert (await client.get("/health")).json()["components"]["database"]["status"] == (
                "healthy"
            )
            assert (await client.get("/api/v1/agents")).status_code == 200

            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["status"] == "unhealthy"
            assert health.json()["components"]["database"]["status"] == "unhealthy"
            assert health.json()["components"]["database"]["database"] == "postgresql"
            data = await client.get("/api/v1/agents")
            assert data.status_code == 503
            assert data.json()["error"]["code"] == "database_unavailable"
            jobs = await client.get("/api/v1/jobs")
            assert jobs.status_code == 503
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/livez")).status_code == 200

            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            status = 0
            for _ in range(50):
                status = (await client.get("/api/v1/agents")).status_code
                if status == 200:
                    break
                await asyncio.sleep(0.2)
            assert status == 200
            assert (await client.get("/health")).json()["components"]["database"]["status"] == (
                "healthy"
            )
    finally:
        await admin.close()
        await drop_database(name)


@pytest.mark.slow
@pytest.mark.engine("postgresql", reason="CREATE DATABASE ... TEMPLATE")
async def test_starts_while_database_missing_and_connects_later(
    make_settings: Callable[..., ApiSettings], template_database_url: str
) -> None:
    """No crash loop: the app serves /livez and 503s, and connects once the database exists."""
    name = f"cesar_api_late_{uuid.uuid4().hex[:10]}"
    template = urlsplit(template_database_url).path.lstrip("/")
    settings = make_settings(database_url=database_named(admin_url(), name))
    try:
        async with client_for(create_app(settings)) as client:
            assert (await client.get("/livez")).status_code == 200
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["components"]["database"]["error"]
            assert (await client.get("/api/v1/agents")).status_code == 503
            admin = await connect(admin_url())
            try:
                await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            finally:
                await admin.close()
            status = 0
            for _ in range(60):
                status = (await client.get("/api/v1/agents")).status_code
                if status == 200:
                    break
                await asyncio.sleep(0.25)
            assert status == 200
    finally:
        await drop_database(name)
