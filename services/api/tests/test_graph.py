"""/api/v1/graph against real PostgreSQL: batches, lookups, neighbours, paths, plans."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from cesar_core import graph
from cesar_core.db import Database


def ent(kind: str, name: str, **more: Any) -> dict[str, Any]:
    return {"entity_type": kind, "name": name, **more}


def ref(kind: str, name: str) -> dict[str, str]:
    return {"entity_type": kind, "name": name}


def rel(a: str, b: str, kind: str = "knows") -> dict[str, Any]:
    return {"source": ref("person", a), "target": ref("person", b), "relation_type": kind}


async def post(client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]) -> Any:
    response = await client.post("/api/v1/graph/batch", json=body, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def chain(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, str]:
    """a -> b -> c -> d (knows), e -> a (mentors); returns name -> id."""
    body = {
        "entities": [ent("person", n) for n in "abcde"],
        "relations": [rel("a", "b"), rel("b", "c"), rel("c", "d"), rel("e", "a", "mentors")],
    }
    out = await post(client, auth, body)
    return {e["name"]: e["id"] for e in out["entities"]}


async def test_batch_upserts_in_one_transaction(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {
        "entities": [
            ent("person", "Alice", aliases=["Al"], properties={"age": 30}),
            ent("person", "Bob"),
            ent("org", "Acme", description="makes anvils"),
        ],
        "relations": [
            rel("Alice", "Bob"),
            {
                "source": ref("person", "Alice"),
                "target": ref("org", "Acme"),
                "relation_type": "works_at",
                "weight": 2.5,
            },
        ],
        "observations": [{"entity": ref("person", "Alice"), "content": "likes tea"}],
    }
    first = await post(client, auth, body)
    assert [e["name"] for e in first["entities"]] == ["Alice", "Bob", "Acme"]
    assert [r["relation_type"] for r in first["relations"]] == ["knows", "works_at"]
    assert first["observations_created"] == 1

    body["entities"][0] = ent("person", "Alice", properties={"city": "Oslo"})
    body["relations"][1]["weight"] = 1.0
    second = await post(client, auth, body)
    assert [e["id"] for e in second["entities"]] == [e["id"] for e in first["entities"]]
    assert [r["id"] for r in second["relations"]] == [r["id"] for r in first["relations"]]
    alice = second["entities"][0]
    assert alice["properties"] == {"age": 30, "city": "Oslo"}  # merged
    assert alice["aliases"] == ["Al"]  # kept: none given this time
    assert second["relations"][1]["weight"] == 1.0
    assert second["observations_created"] == 0  # the same text is kept once

    detail = (await client.get(f"/api/v1/graph/entities/{alice['id']}")).json()
    assert [o["content"] for o in detail["observations"]] == ["likes tea"]


async def test_bad_reference_rejects_the_whole_batch(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {
        "entities": [ent("person", "Carol")],
        "relations": [rel("Carol", "Carol", "self"), rel("Carol", "Nobody")],
    }
    same = await client.post("/api/v1/graph/batch", json=body, headers=auth)
    assert same.status_code == 422
    assert "relations[0]: source and target are the same entity" in same.json()["error"]["message"]
    body["relations"] = body["relations"][1:]
    missing = await client.post("/api/v1/graph/batch", json=body, headers=auth)
    assert missing.status_code == 422
    assert "relations[0].target: no entity person/Nobody" in missing.json()["error"]["message"]
    found = await client.get("/api/v1/graph/entities", params={"name": "Carol"})
    assert found.json()["items"] == []  # nothing of the rejected batch was stored
    unknown_id = {"observations": [{"entity": {"id": str(uuid.uuid4())}, "content": "x"}]}
    gone = await client.post("/api/v1/graph/observations", json=unknown_id, headers=auth)
    assert gone.status_code == 422 and "no entity with id" in gone.json()["error"]["message"]


async def test_bad_input_is_a_clear_4xx(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    cases = [
        ({}, "at least one entity"),
        ({"entities": [ent("person", "x", confidence=2)]}, "confidence"),
        # a boolean is not a number (the fuzzer found `false` accepted as 0.0)
        ({"entities": [ent("person", "x", confidence=False)]}, "confidence"),
        ({"entities": [ent("person", " padded")]}, "name"),
        (
            {
                "relations": [
                    {
                        "source": {"id": str(uuid.uuid4()), "name": "x", "entity_type": "y"},
                        "target": ref("a", "b"),
                        "relation_type": "r",
                    }
                ]
            },
            "give either id, or entity_type and name",
        ),
        (
            {
                "relations": [
                    {"source": {"name": "x"}, "target": ref("a", "b"), "relation_type": "r"}
                ]
            },
            "give either id",
        ),
        ({"entities": [ent("person", "x", colour="red")]}, "colour"),
        (
            {"entities": [ent("person", "x", agent_id=str(uuid.uuid4()))]},
            "rejected by the database",
        ),
    ]
    for body, expected in cases:
        response = await client.post("/api/v1/graph/batch", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        assert expected in response.text, (expected, response.text)
    anonymous = await client.post("/api/v1/graph/batch", json={"entities": [ent("p", "q")]})
    assert anonymous.status_code == 401
    assert (await client.get("/api/v1/graph/entities")).status_code == 422
    assert (await client.get(f"/api/v1/graph/entities/{uuid.uuid4()}")).status_code == 404


async def test_lookup_by_name_alias_and_type(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await post(
        client,
        auth,
        {
            "entities": [
                ent("person", "Paris", aliases=["P"]),
                ent("city", "Paris"),
                ent("city", "Rome"),
            ]
        },
    )

    async def names(**params: str) -> list[tuple[str, str]]:
        response = await client.get("/api/v1/graph/entities", params=params)
        assert response.status_code == 200, response.text
        return [(e["entity_type"], e["name"]) for e in response.json()["items"]]

    assert await names(name="Paris") == [("city", "Paris"), ("person", "Paris")]
    assert await names(name="Paris", entity_type="city") == [("city", "Paris")]
    assert await names(name="P") == [("person", "Paris")]
    assert await names(entity_type="city") == [("city", "Paris"), ("city", "Rome")]


async def test_neighbours_up_to_k_hops(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    ids = await chain(client, auth)
    name_of = {v: k for k, v in ids.items()}

    async def around(name: str, **params: Any) -> list[tuple[str, int]]:
        response = await client.get(f"/api/v1/graph/entities/{ids[name]}/neighbours", params=params)
        assert response.status_code == 200, response.text
        return [(n["name"], n["depth"]) for n in response.json()["neighbours"]]

    assert await around("a") == [("b", 1), ("e", 1)]
    assert await around("a", depth=2, direction="out") == [("b", 1), ("c", 2)]
    assert await around("a", depth=3, direction="in") == [("e", 1)]
    assert await around("a", depth=4) == [("b", 1), ("e", 1), ("c", 2), ("d", 3)]
    assert await around("a", depth=4, relation_type="mentors") == [("e", 1)]
    body = (await client.get(f"/api/v1/graph/entities/{ids['b']}/neighbours")).json()
    assert sorted(
        (name_of[r["source_id"]], name_of[r["target_id"]]) for r in body["relations"]
    ) == [
        ("a", "b"),
        ("b", "c"),
    ]
    too_deep = await client.get(
        f"/api/v1/graph/entities/{ids['a']}/neighbours", params={"depth": 5}
    )
    assert too_deep.status_code == 422 and "depth" in too_deep.text
    assert (
        await client.get(f"/api/v1/graph/entities/{uuid.uuid4()}/neighbours")
    ).status_code == 404


async def test_shortest_path(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    ids = await chain(client, auth)
    # a shortcut a -> d of another type: the shortest way unless only "knows" counts
    await post(client, auth, {"relations": [rel("a", "d", "met")]})

    async def path(a: str, b: str, **params: Any) -> dict[str, Any]:
        response = await client.get(
            "/api/v1/graph/path", params={"from": ids[a], "to": ids[b], **params}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    direct = await path("a", "d")
    assert direct["length"] == 1 and [e["name"] for e in direct["entities"]] == ["a", "d"]
    knows = await path("a", "d", relation_type="knows")
    assert [e["name"] for e in knows["entities"]] == ["a", "b", "c", "d"]
    assert [r["relation_type"] for r in knows["relations"]] == ["knows"] * 3
    assert (await path("a", "d", relation_type="knows", max_depth=2))["found"] is False
    assert (await path("d", "e", direction="out"))["found"] is False
    back = await path("d", "e")  # both ways
    assert [e["name"] for e in back["entities"]] == ["d", "a", "e"]
    assert (await path("a", "a"))["length"] == 0
    bad = await client.get(
        "/api/v1/graph/path", params={"from": ids["a"], "to": ids["d"], "max_depth": 7}
    )
    assert bad.status_code == 422
    missing = await client.get(
        "/api/v1/graph/path", params={"from": ids["a"], "to": str(uuid.uuid4())}
    )
    assert missing.status_code == 404


async def _plan(db: Database, sql: str, *args: Any) -> str:
    async with db.connection() as conn:
        rows = await conn.fetch("EXPLAIN " + sql, *args)
    return "\n".join(r[0] for r in rows)


async def test_queries_use_the_schema_indexes(db: Database) -> None:
    """With a graph large enough that scanning would cost more, the plans use the indexes."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO kg_entities (entity_type, name) "
            "SELECT 'node', 'n' || g FROM generate_series(1, 5000) AS g"
        )
        await conn.execute(
            "INSERT INTO kg_relations (source_id, target_id, relation_type) "
            "SELECT a.id, b.id, 'next' FROM kg_entities a JOIN kg_entities b "
            "ON b.name = 'n' || (CAST(substr(a.name, 2) AS INT8) + 1)"
        )
        await conn.execute("ANALYZE kg_entities")
        await conn.execute("ANALYZE kg_relations")
        start = await conn.fetchval("SELECT id FROM kg_entities WHERE name = 'n10'")
        end = await conn.fetchval("SELECT id FROM kg_entities WHERE name = 'n13'")

    neighbours = await _plan(db, graph.NEIGHBOURS, start, 3, "both", None, 100)
    assert "kg_relations_source_type_idx" in neighbours, neighbours
    assert "kg_relations_target_type_idx" in neighbours, neighbours
    assert "Seq Scan on kg_relations" not in neighbours, neighbours
    path = await _plan(db, graph.SHORTEST_PATH, start, 4, "out", None, end)
    assert "kg_relations_source_type_idx" in path, path
    assert "Seq Scan on kg_relations" not in path, path
    by_name = await _plan(db, graph.FIND_BY_TYPE_AND_NAME, "node", "n42", 10)
    assert "kg_entities_name_idx" in by_name and "Seq Scan" not in by_name, by_name
    exact = await _plan(db, graph.ENTITY_ID, "node", "n42")
    assert "Index Scan using kg_entities_" in exact and "Seq Scan" not in exact, exact
    by_alias = await _plan(db, graph.FIND_BY_NAME, "n42", 10)
    assert "kg_entities_name_idx" in by_alias and "kg_entities_aliases_gin_idx" in by_alias, (
        by_alias
    )

    async with db.connection() as conn:  # and the answers are right on the larger graph
        found = await graph.shortest_path(
            conn, start, end, max_depth=4, direction="out", relation_type=None
        )
        near = await graph.neighbours(
            conn, start, depth=2, direction="both", relation_type=None, limit=10
        )
    assert found is not None and len(found[1]) == 3
    assert sorted(n["name"] for n in near) == ["n11", "n12", "n8", "n9"]


async def test_graph_routes_are_in_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/graph/batch",
        "/api/v1/graph/entities",
        "/api/v1/graph/relations",
        "/api/v1/graph/observations",
        "/api/v1/graph/entities/{entity_id}",
        "/api/v1/graph/entities/{entity_id}/neighbours",
        "/api/v1/graph/path",
    ):
        assert path in paths, path
