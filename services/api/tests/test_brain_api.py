"""Agent memories (store, recall, associations), reputation, and routing decisions."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from cesar_core.db import Database

Auth = dict[str, str]


async def make_agent(client: httpx.AsyncClient, auth: Auth, name: str, **extra: Any) -> str:
    body = {"name": name, "agent_type": extra.pop("agent_type", "worker"), **extra}
    response = await client.post("/api/v1/agents", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def store(
    client: httpx.AsyncClient, auth: Auth, agent: str, content: str, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/agents/{agent}/memories", json={"content": content, **extra}, headers=auth
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_store_list_and_bad_input(client: httpx.AsyncClient, auth: Auth) -> None:
    agent = await make_agent(client, auth, "memo")
    first = await store(client, auth, agent, "Paris is the capital of France", tags=["geo"])
    assert first["memory_type"] == "episodic" and first["importance"] == 0.5
    assert first["access_count"] == 0 and not first["is_consolidated"]
    await store(client, auth, agent, "Lunch was good", memory_type="working", importance=0.1)

    listed = (await client.get(f"/api/v1/agents/{agent}/memories?limit=1")).json()
    assert len(listed["items"]) == 1 and listed["next_cursor"]
    assert listed["items"][0]["content"] == "Lunch was good"
    tagged = (await client.get(f"/api/v1/agents/{agent}/memories?tag=geo")).json()
    assert [m["id"] for m in tagged["items"]] == [first["id"]]

    missing = uuid.uuid4()
    for method, path, body in (
        ("POST", f"/api/v1/agents/{missing}/memories", {"content": "x"}),
        ("GET", f"/api/v1/agents/{missing}/memories", None),
        ("POST", f"/api/v1/agents/{missing}/memories/recall", {"query": "x"}),
        ("GET", f"/api/v1/agents/{agent}/memories/{missing}", None),
        ("GET", f"/api/v1/agents/{missing}/reputation", None),
        ("GET", f"/api/v1/agents/{missing}/replay-sessions", None),
    ):
        response = await client.request(method, path, json=body, headers=auth)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    for body, field in (
        ({"content": ""}, "content"),
        ({"content": "x", "importance": 1.5}, "importance"),
        ({"content": "x", "importance": "high"}, "importance"),
        ({"content": "x", "memory_type": "dream"}, "memory_type"),
        ({"content": "x", "tags": [" padded "]}, "tags"),
        ({"content": "x", "colour": "red"}, "colour"),
    ):
        response = await client.post(f"/api/v1/agents/{agent}/memories", json=body, headers=auth)
        assert response.status_code == 422, body
        assert field in response.json()["error"]["message"]
    no_key = await client.post(f"/api/v1/agents/{agent}/memories", json={"content": "x"})
    assert no_key.status_code == 401
    bad = await client.post(
        f"/api/v1/agents/{agent}/memories/recall", json={"query": "?!"}, headers=auth
    )
    assert bad.status_code == 422 and "no words" in bad.json()["error"]["message"]
    assert (await client.get(f"/api/v1/agents/{agent}/memories?cursor=nonsense")).status_code == 422


async def test_recall_ranks_marks_access_and_records_co_recall(
    client: httpx.AsyncClient, auth: Auth, db: Database
) -> None:
    agent = await make_agent(client, auth, "recaller")
    other = await make_agent(client, auth, "stranger")
    disk = await store(client, auth, agent, "The disk on node 3 is full", importance=0.9)
    deploy = await store(
        client, auth, agent, "Deploy failed on node 3", tags=["ops"], importance=0.2
    )
    await store(client, auth, agent, "Coffee machine is broken", importance=1.0)
    await store(client, auth, other, "The disk is full", importance=1.0)

    response = await client.post(
        f"/api/v1/agents/{agent}/memories/recall",
        json={"query": "disk full node", "limit": 5},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    hits = response.json()["items"]
    # only memories sharing a word with the query; the full match first
    assert [h["memory"]["id"] for h in hits] == [disk["id"], deploy["id"]]
    assert [h["text_match"] for h in hits] == [1.0, round(1 / 3, 6)]
    for hit in hits:
        expected = 0.6 * hit["text_match"] + 0.25 * hit["memory"]["importance"]
        assert abs(hit["score"] - expected - 0.15 * hit["recency"]) < 1e-5
        assert 0.99 < hit["recency"] <= 1.0
        assert hit["memory"]["access_count"] == 0  # as it was when scored
    assert response.json()["candidates"] == 2

    by_tag = await client.post(
        f"/api/v1/agents/{agent}/memories/recall", json={"tags": ["ops"]}, headers=auth
    )
    assert [h["memory"]["id"] for h in by_tag.json()["items"]] == [deploy["id"]]
    top = await client.post(
        f"/api/v1/agents/{agent}/memories/recall",
        json={"min_importance": 0.95, "limit": 1},
        headers=auth,
    )
    assert [h["memory"]["content"] for h in top.json()["items"]] == ["Coffee machine is broken"]

    got = (await client.get(f"/api/v1/agents/{agent}/memories/{deploy['id']}")).json()
    assert got["access_count"] == 2 and got["last_accessed_at"] is not None
    async with db.connection() as conn:
        events = await conn.fetch(
            "SELECT payload FROM agent_events WHERE event_type = 'memory.recalled' "
            "ORDER BY created_at, id"
        )
    first = json.loads(events[0]["payload"])
    assert first["memory_ids"] == [disk["id"], deploy["id"]]
    assert first["query"] == "disk full node"


async def test_associations(client: httpx.AsyncClient, auth: Auth) -> None:
    agent = await make_agent(client, auth, "linker")
    other = await make_agent(client, auth, "elsewhere")
    a = await store(client, auth, agent, "rain")
    b = await store(client, auth, agent, "wet streets")
    foreign = await store(client, auth, other, "umbrella")
    path = f"/api/v1/agents/{agent}/memories/{a['id']}/associations"
    made = await client.post(
        path,
        json={"target_memory_id": b["id"], "association_type": "causal", "strength": 0.8},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    assert made.json()["association_type"] == "causal" and made.json()["strength"] == 0.8
    again = await client.post(path, json={"target_memory_id": b["id"]}, headers=auth)
    assert again.json()["association_type"] == "related" and again.json()["strength"] == 0.5
    detail = (await client.get(f"/api/v1/agents/{agent}/memories/{b['id']}")).json()
    assert [(x["source_memory_id"], x["target_memory_id"]) for x in detail["associations"]] == [
        (a["id"], b["id"])
    ]
    itself = await client.post(path, json={"target_memory_id": a["id"]}, headers=auth)
    assert itself.status_code == 422 and "itself" in itself.json()["error"]["message"]
    across = await client.post(path, json={"target_memory_id": foreign["id"]}, headers=auth)
    assert across.status_code == 404 and "target_memory_id" in across.json()["error"]["message"]
    wrong = await client.post(
        path, json={"target_memory_id": b["id"], "strength": -0.1}, headers=auth
    )
    assert wrong.status_code == 422 and "strength" in wrong.json()["error"]["message"]
    sessions = (await client.get(f"/api/v1/agents/{agent}/replay-sessions")).json()
    assert sessions == {"sessions": [], "consolidations": []}


async def test_reputation_view(client: httpx.AsyncClient, auth: Auth, db: Database) -> None:
    agent = await make_agent(client, auth, "reputable")
    fresh = (await client.get(f"/api/v1/agents/{agent}/reputation")).json()
    assert fresh["computed"] is False and fresh["score"] == 0.5 and fresh["events"] == []
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO agent_reputation (agent_id, score, successes) VALUES ($1, 0.8, 4)",
            uuid.UUID(agent),
        )
        await conn.execute(
            "INSERT INTO agent_reputation_events (agent_id, event_type, delta, score_before, "
            "score_after) VALUES ($1, 'task_success', 0.3, 0.5, 0.8)",
            uuid.UUID(agent),
        )
    rep = (await client.get(f"/api/v1/agents/{agent}/reputation")).json()
    assert rep["computed"] is True and rep["score"] == 0.8 and rep["successes"] == 4
    assert [(e["event_type"], e["delta"]) for e in rep["events"]] == [("task_success", 0.3)]
    bad = await client.get(f"/api/v1/agents/{agent}/reputation?events=-1")
    assert bad.status_code == 422


async def test_routing_capability_then_reputation_then_load(
    client: httpx.AsyncClient, auth: Auth, db: Database
) -> None:
    alpha = await make_agent(client, auth, "alpha", capabilities=["summarize"], status="active")
    bravo = await make_agent(client, auth, "bravo", capabilities=["summarize"], status="active")
    await make_agent(client, auth, "charlie", capabilities=["summarize"], status="offline")
    general = await make_agent(client, auth, "generalist", agent_type="general", status="idle")
    rule = await client.post(
        "/api/v1/routing/rules",
        json={
            "name": "summaries",
            "priority": 10,
            "conditions": {"request_type": ["summarize", "digest"]},
            "target_capability": "summarize",
        },
        headers=auth,
    )
    assert rule.status_code == 201, rule.text
    dropped_rule = await client.post(
        "/api/v1/routing/rules",
        json={"name": "no-spam", "priority": 5, "conditions": {"source": "spam"}, "action": "drop"},
        headers=auth,
    )
    assert dropped_rule.status_code == 201
    rules = (await client.get("/api/v1/routing/rules")).json()
    assert [r["name"] for r in rules] == ["no-spam", "summaries", "default-fallback"]

    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO agent_reputation (agent_id, score) VALUES ($1, 0.9)", uuid.UUID(bravo)
        )
        tasks = [
            await conn.fetchval(
                "INSERT INTO agent_tasks (task_type) VALUES ('summarize') RETURNING id"
            )
            for _ in range(2)
        ]

    async def decide(**body: Any) -> dict[str, Any]:
        response = await client.post("/api/v1/routing/decide", json=body, headers=auth)
        assert response.status_code == 201, response.text
        return dict(response.json())

    # capability matches alpha and bravo (charlie is offline); bravo has the better reputation
    first = await decide(request_type="summarize", task_id=str(tasks[0]))
    assert first["outcome"] == "routed" and first["selected_agent_id"] == bravo
    assert first["rule_name"] == "summaries" and first["score"] == 0.9
    assert [(c["name"], c["reputation"], c["load"]) for c in first["candidates"]] == [
        ("bravo", 0.9, 0),
        ("alpha", 0.5, 0),
    ]
    async with db.connection() as conn:
        task = await conn.fetchrow(
            "SELECT agent_id, status FROM agent_tasks WHERE id = $1", tasks[0]
        )
        await conn.execute(
            "UPDATE agent_reputation SET score = 0.5 WHERE agent_id = $1", uuid.UUID(bravo)
        )
    assert (str(task["agent_id"]), task["status"]) == (bravo, "assigned")
    # equal reputation now: the lighter load wins (bravo holds one assigned task)
    second = await decide(request_type="digest", task_id=str(tasks[1]))
    assert second["selected_agent_id"] == alpha
    assert [(c["name"], c["load"]) for c in second["candidates"]] == [("alpha", 0), ("bravo", 1)]

    spam = await decide(request_type="summarize", request={"source": "spam"})
    assert spam["outcome"] == "dropped" and spam["selected_agent_id"] is None
    fallback = await decide(request_type="weather")
    assert fallback["rule_name"] == "default-fallback"
    assert fallback["selected_agent_id"] == general
    nobody = await decide(request_type="weather", capability="astrology")
    assert nobody["outcome"] == "no_match" and nobody["rule_id"] is None
    assert "default-fallback" in nobody["reason"]

    listed = (await client.get(f"/api/v1/routing/decisions?agent_id={alpha}")).json()
    assert [d["id"] for d in listed["items"]] == [second["id"]]
    page = (await client.get("/api/v1/routing/decisions?limit=2")).json()
    assert [d["id"] for d in page["items"]] == [nobody["id"], fallback["id"]]
    rest = (
        await client.get(f"/api/v1/routing/decisions?limit=10&cursor={page['next_cursor']}")
    ).json()
    assert [d["id"] for d in rest["items"]] == [spam["id"], second["id"], first["id"]]
    dropped = (await client.get("/api/v1/routing/decisions?outcome=dropped")).json()
    assert [d["id"] for d in dropped["items"]] == [spam["id"]]
    one = (await client.get(f"/api/v1/routing/decisions/{first['id']}")).json()
    assert one == first
    rules = {r["name"]: r for r in (await client.get("/api/v1/routing/rules")).json()}
    assert rules["summaries"]["match_count"] == 2 and rules["no-spam"]["match_count"] == 1


async def test_routing_bad_input(client: httpx.AsyncClient, auth: Auth) -> None:
    for body, field in (
        ({"name": "x", "conditions": {"deep": {"a": 1}}}, "conditions.deep"),
        ({"name": "x", "conditions": {"empty": []}}, "conditions.empty"),
        ({"name": "x", "action": "explode"}, "action"),
        ({"name": "x", "priority": -1}, "priority"),
        ({"name": ""}, "name"),
    ):
        response = await client.post("/api/v1/routing/rules", json=body, headers=auth)
        assert response.status_code == 422, body
        assert field in response.json()["error"]["message"], response.json()
    ghost = await client.post(
        "/api/v1/routing/rules",
        json={"name": "ghost", "target_agent_id": str(uuid.uuid4())},
        headers=auth,
    )
    assert ghost.status_code == 422
    dup = await client.post(
        "/api/v1/routing/rules", json={"name": "default-fallback"}, headers=auth
    )
    assert dup.status_code == 409
    unknown_task = await client.post(
        "/api/v1/routing/decide",
        json={"request_type": "x", "task_id": str(uuid.uuid4())},
        headers=auth,
    )
    assert unknown_task.status_code == 404 and "task_id" in unknown_task.json()["error"]["message"]
    no_type = await client.post("/api/v1/routing/decide", json={}, headers=auth)
    assert no_type.status_code == 422 and "request_type" in no_type.json()["error"]["message"]
    assert (await client.get("/api/v1/routing/decisions?outcome=maybe")).status_code == 422
    assert (await client.get(f"/api/v1/routing/decisions/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/api/v1/routing/decisions/not-a-uuid")).status_code == 422


async def test_brain_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in (
        ("/api/v1/agents/{agent_id}/memories", "post"),
        ("/api/v1/agents/{agent_id}/memories", "get"),
        ("/api/v1/agents/{agent_id}/memories/recall", "post"),
        ("/api/v1/agents/{agent_id}/memories/{memory_id}", "get"),
        ("/api/v1/agents/{agent_id}/memories/{memory_id}/associations", "post"),
        ("/api/v1/agents/{agent_id}/replay-sessions", "get"),
        ("/api/v1/agents/{agent_id}/reputation", "get"),
        ("/api/v1/routing/rules", "post"),
        ("/api/v1/routing/rules", "get"),
        ("/api/v1/routing/decide", "post"),
        ("/api/v1/routing/decisions", "get"),
        ("/api/v1/routing/decisions/{decision_id}", "get"),
    ):
        assert method in paths[path], (path, method)
