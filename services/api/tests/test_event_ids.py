"""Event ids are random (version 4): no write hotspot on a multi-node CockroachDB. A batch's
order is kept by created_at, one microsecond apart, so listings and replays keep it."""

from __future__ import annotations

import uuid

import httpx


async def test_a_batch_keeps_its_order_with_random_ids(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sent = [{"event_type": "order.check", "payload": {"n": n}} for n in range(60)]
    created = await client.post("/api/v1/events", json={"events": sent}, headers=auth)
    assert created.status_code == 201, created.text
    ids = created.json()["ids"]
    assert {uuid.UUID(i).version for i in ids} == {4}
    assert ids != sorted(ids)  # random, so their order is not what keeps the batch's order
    listing = (await client.get("/api/v1/events?event_type=order.check&limit=100")).json()
    newest_first = [e["payload"]["n"] for e in listing["items"]]
    assert newest_first == list(reversed(range(60)))
