"""What one anonymous request may cost the database: a statement timeout on every API query,
job listing pages bounded in bytes, and payload search only with an API key."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
from cesar_api.app import create_app
from cesar_api.settings import ApiSettings
from cesar_core.db import Database
from cesar_core.redis import RedisClient

from .conftest import client_for

INSERT_JOB = """
INSERT INTO job_queue (id, job_type, payload, status, created_at, updated_at)
VALUES (gen_random_uuid(), 'maintenance.noop', $1::JSONB, 'succeeded',
        now() - make_interval(secs => $2), now())
"""


async def seed_jobs(db: Database, payloads: list[dict[str, Any]]) -> None:
    async with db.connection() as conn:
        for age, payload in enumerate(payloads):
            await conn.execute(INSERT_JOB, json.dumps(payload), float(age))


async def get_while_jobs_locked(
    client: httpx.AsyncClient, database_url: str, path: str
) -> httpx.Response:
    """GET ``path`` while another session holds job_queue's lock, as a scan of a huge table
    would hold the API up. Without a statement timeout the request waits 60 s."""
    blocker = await asyncpg.connect(database_url)
    try:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("LOCK TABLE job_queue IN ACCESS EXCLUSIVE MODE")
        try:
            async with asyncio.timeout(20):
                return await client.get(path)
        finally:
            await locked.rollback()
    finally:
        await blocker.close()


async def test_a_query_past_the_statement_timeout_is_a_clear_503(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, database_url: str
) -> None:
    app = create_app(make_settings(statement_timeout_ms=300))
    async with client_for(app) as client:
        response = await get_while_jobs_locked(client, database_url, "/api/v1/jobs")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "query_timeout"
        assert "statement timeout" in error["message"]
        assert response.headers["Retry-After"]
        # the timeout is every pooled session's default, not something a request sets:
        # a transaction's SET LOCAL falls back to it, nothing a request does outlives it
        pool: Database = app.state.resources.db()
        async with pool.connection() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "300ms"
            async with conn.transaction():
                await conn.execute("SET LOCAL statement_timeout = '2s'")
            assert await conn.fetchval("SHOW statement_timeout") == "300ms"
        assert (await client.get("/api/v1/jobs")).status_code == 200


async def test_the_timeout_bounds_job_queue_statements_too(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, database_url: str
) -> None:
    """Not only the listing's reads: the job queue's own statements (``GET /jobs/{id}``) run
    on the same pool and are cut off the same way."""
    app = create_app(make_settings(statement_timeout_ms=300))
    async with client_for(app) as client:
        response = await get_while_jobs_locked(client, database_url, f"/api/v1/jobs/{uuid.uuid4()}")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "query_timeout"
        assert (await client.get(f"/api/v1/jobs/{uuid.uuid4()}")).status_code == 404


async def test_payload_search_needs_an_api_key(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await seed_jobs(db, [{"symbol": "AAPL"}, {"symbol": "MSFT"}])
    anonymous = await client.get("/api/v1/jobs?search=aapl")
    assert anonymous.status_code == 401
    assert "search" in anonymous.json()["error"]["message"]
    assert "API key" in anonymous.json()["error"]["message"]
    found = await client.get("/api/v1/jobs?search=aapl", headers=auth)
    assert found.status_code == 200
    assert [j["payload"] for j in found.json()["items"]] == [{"symbol": "AAPL"}]
    # listing without a search stays open (reads need no key unless READS_REQUIRE_KEY)
    assert len((await client.get("/api/v1/jobs")).json()["items"]) == 2


async def test_listing_pages_are_bounded_in_bytes(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, db: Database
) -> None:
    budget = 4096
    app = create_app(make_settings(max_page_bytes=budget))
    # newest first: one item larger than the whole budget, then ten of ~1 KB
    payloads = [{"blob": "x" * 6000}] + [{"n": i, "blob": "y" * 1000} for i in range(10)]
    await seed_jobs(db, payloads)
    async with client_for(app) as client:
        pages: list[dict[str, Any]] = []
        url = "/api/v1/jobs?limit=500"
        while True:
            response = await client.get(url)
            assert response.status_code == 200
            page = response.json()
            pages.append(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
            url = f"/api/v1/jobs?limit=500&cursor={cursor}"
            assert len(pages) < 20
    # the oversized item comes alone (a page always has at least one item)
    assert len(pages[0]["items"]) == 1
    assert pages[0]["items"][0]["payload"] == payloads[0]
    for page in pages[1:]:
        items_bytes = len(json.dumps(page["items"], separators=(",", ":")))
        assert len(page["items"]) >= 1
        assert items_bytes <= budget + 200  # the database prints JSONB with a few spaces
    got = [item["payload"] for page in pages for item in page["items"]]
    assert got == payloads  # every job once, in order, across the cut pages
    assert len(pages) > 2


async def test_event_pages_are_bounded_in_bytes(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, auth: dict[str, str]
) -> None:
    budget = 4096
    app = create_app(make_settings(max_page_bytes=budget))
    async with client_for(app) as client:
        events = [{"event_type": "big", "payload": {"blob": "z" * 6000}}] + [
            {"event_type": "note", "payload": {"n": i, "blob": "w" * 1000}} for i in range(10)
        ]
        for event in reversed(events):  # the big one last, so newest (listed first)
            posted = await client.post("/api/v1/events", json={"events": [event]}, headers=auth)
            assert posted.status_code == 201
        pages: list[dict[str, Any]] = []
        url = "/api/v1/events?limit=500"
        while True:
            page = (await client.get(url)).json()
            pages.append(page)
            if page["next_cursor"] is None:
                break
            url = f"/api/v1/events?limit=500&cursor={page['next_cursor']}"
            assert len(pages) < 20
    assert len(pages[0]["items"]) == 1 and pages[0]["items"][0]["event_type"] == "big"
    for page in pages[1:]:
        assert len(json.dumps([i["payload"] for i in page["items"]])) <= budget + 200
    assert [i["payload"] for p in pages for i in p["items"]] == [e["payload"] for e in events]
    assert len(pages) > 2
