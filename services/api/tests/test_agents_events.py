"""Agents (create, list, get, update, heartbeat) and agent events (batch ingest, listing)."""

from __future__ import annotations

import json
import uuid

import httpx
from cesar_api.settings import ApiSettings
from cesar_core.db import Database
from cesar_core.redis import RedisClient


async def test_agent_lifecycle(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await client.post(
        "/api/v1/agents",
        json={
            "name": "planner-1",
            "agent_type": "planner",
            "capabilities": ["plan", "search"],
            "config": {"temperature": 0.2},
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["status"] == "idle" and agent["capabilities"] == ["plan", "search"]

    dup = await client.post(
        "/api/v1/agents", json={"name": "planner-1", "agent_type": "x"}, headers=auth
    )
    assert dup.status_code == 409
    assert dup.json()["error"]["code"] == "conflict"

    got = await client.get(f"/api/v1/agents/{agent['id']}")
    assert got.json() == agent
    missing = await client.get(f"/api/v1/agents/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    patched = await client.patch(
        f"/api/v1/agents/{agent['id']}",
        json={"status": "busy", "description": "plans things"},
        headers=auth,
    )
    assert patched.status_code == 200
    assert patched.json()["status"] == "busy"
    assert patched.json()["description"] == "plans things"
    assert patched.json()["name"] == "planner-1"
    null_name = await client.patch(
        f"/api/v1/agents/{agent['id']}", json={"name": None}, headers=auth
    )
    assert null_name.status_code == 422 and "name" in null_name.json()["error"]["message"]
    cleared = await client.patch(
        f"/api/v1/agents/{agent['id']}", json={"description": None}, headers=auth
    )
    assert cleared.json()["description"] is None
    assert (
        await client.patch(f"/api/v1/agents/{uuid.uuid4()}", json={"status": "idle"}, headers=auth)
    ).status_code == 404

    beat = await client.post(f"/api/v1/agents/{agent['id']}/heartbeat", headers=auth)
    assert beat.status_code == 200 and beat.json()["last_heartbeat_at"] is not None
    beat = await client.post(
        f"/api/v1/agents/{agent['id']}/heartbeat", json={"status": "active"}, headers=auth
    )
    assert beat.json()["status"] == "active"

    for i in range(4):
        await client.post(
            "/api/v1/agents", json={"name": f"worker-{i}", "agent_type": "worker"}, headers=auth
        )
    page1 = (await client.get("/api/v1/agents?agent_type=worker&limit=3")).json()
    assert len(page1["items"]) == 3 and page1["next_cursor"]
    page2 = (
        await client.get(f"/api/v1/agents?agent_type=worker&limit=3&cursor={page1['next_cursor']}")
    ).json()
    assert len(page2["items"]) == 1 and page2["next_cursor"] is None
    names = {a["name"] for a in page1["items"] + page2["items"]}
    assert names == {f"worker-{i}" for i in range(4)}
    by_cap = (await client.get("/api/v1/agents?capability=search")).json()["items"]
    assert [a["name"] for a in by_cap] == ["planner-1"]


async def test_event_batch_is_stored_published_and_listed(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    redis: RedisClient,
    api_settings: ApiSettings,
) -> None:
    agent = (
        await client.post(
            "/api/v1/agents", json={"name": "emitter", "agent_type": "t"}, headers=auth
        )
    ).json()
    events = [
        {"agent_id": agent["id"], "event_type": "task.started", "payload": {"n": i}}
        for i in range(5)
    ] + [{"event_type": "system.note", "severity": "warning", "source": "tests"}]
    response = await client.post("/api/v1/events", json={"events": events}, headers=auth)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["count"] == 6 and result["published"] is True

    entries = await redis.xrange(api_settings.event_stream)
    published = [json.loads(fields[b"data"]) for _, fields in entries]
    assert [e["id"] for e in published] == result["ids"]
    assert published[0]["payload"] == {"n": 0}

    listing = (await client.get(f"/api/v1/events?agent_id={agent['id']}&limit=2")).json()
    assert len(listing["items"]) == 2 and listing["next_cursor"]
    seen = [e["id"] for e in listing["items"]]
    cursor = listing["next_cursor"]
    while cursor:
        page = (
            await client.get(f"/api/v1/events?agent_id={agent['id']}&limit=2&cursor={cursor}")
        ).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(result["ids"][:5])
    typed = (await client.get("/api/v1/events?event_type=system.note")).json()["items"]
    assert len(typed) == 1 and typed[0]["severity"] == "warning"
    future = (await client.get("/api/v1/events?since=2999-01-01T00:00:00Z")).json()["items"]
    assert future == []
    naive = await client.get("/api/v1/events?since=2020-01-01T00:00:00")
    assert naive.status_code == 422


async def test_event_batch_is_all_or_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    ghost = str(uuid.uuid4())
    response = await client.post(
        "/api/v1/events",
        json={"events": [{"event_type": "ok"}, {"event_type": "bad", "agent_id": ghost}]},
        headers=auth,
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "events[1].agent_id" in error["message"] and ghost in error["message"]
    bad_severity = await client.post(
        "/api/v1/events",
        json={"events": [{"event_type": "ok"}, {"event_type": "x", "severity": "loud"}]},
        headers=auth,
    )
    assert bad_severity.status_code == 422
    assert "body.events[1].severity" in bad_severity.json()["error"]["message"]
    nul = await client.post(
        "/api/v1/events",
        json={"events": [{"event_type": "ok"}, {"event_type": "x", "payload": {"a": "\u0000"}}]},
        headers=auth,
    )
    assert nul.status_code == 422
    empty = await client.post("/api/v1/events", json={"events": []}, headers=auth)
    assert empty.status_code == 422
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agent_events") == 0
