"""The live event stream over a real uvicorn server with the `websockets` client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cesar_api.app import create_app
from cesar_api.settings import ApiSettings
from cesar_core.events import publish_events
from cesar_core.redis import RedisClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .conftest import LiveServer, serve


async def next_of(ws: ClientConnection, kind: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return dict(message)
            if message["type"] not in ("ping", "hello", "replay_done"):
                raise AssertionError(f"expected {kind}, got {message}")


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


async def post_events(
    server: LiveServer, auth: dict[str, str], events: list[dict[str, Any]]
) -> list[str]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/api/v1/events", json={"events": events}, headers=auth)
        assert response.status_code == 201, response.text
        return list(response.json()["ids"])


async def make_agent(server: LiveServer, auth: dict[str, str], name: str) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/api/v1/agents", json={"name": name, "agent_type": "t"}, headers=auth
        )
        return str(response.json()["id"])


async def test_live_events_with_filters(live: LiveServer, auth: dict[str, str]) -> None:
    a = await make_agent(live, auth, "a")
    b = await make_agent(live, auth, "b")
    base = f"{live.ws_url}/api/v1/events/stream"
    async with (
        connect(base) as everything,
        connect(f"{base}?agent_id={a}") as only_a,
        connect(f"{base}?event_type=alarm") as alarms,
    ):
        for ws in (everything, only_a, alarms):
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello"
        hub = live.app.state.resources.hub
        await wait_until(lambda: len(hub.clients) == 3, 10)  # all three in the fan-out
        ids = await post_events(
            live,
            auth,
            [
                {"agent_id": a, "event_type": "note"},
                {"agent_id": b, "event_type": "alarm"},
                {"agent_id": a, "event_type": "alarm", "payload": {"x": 1}},
            ],
        )
        got_all = [(await next_of(everything, "event"))["id"] for _ in range(3)]
        assert got_all == ids
        got_a = [(await next_of(only_a, "event"))["id"] for _ in range(2)]
        assert got_a == [ids[0], ids[2]]
        got_alarms = [await next_of(alarms, "event") for _ in range(2)]
        assert [m["id"] for m in got_alarms] == [ids[1], ids[2]]
        assert got_alarms[1]["event"]["payload"] == {"x": 1}
        assert got_alarms[1]["replayed"] is False and got_alarms[1]["stream_id"]
    async with httpx.AsyncClient(base_url=live.url) as http:
        metrics = (await http.get("/metrics")).text
    assert "cesar_api_events_published_total 3.0" in metrics


async def test_resume_replays_stored_events_then_live(
    live: LiveServer, auth: dict[str, str]
) -> None:
    ids = await post_events(live, auth, [{"event_type": f"e{i}"} for i in range(4)])
    url = f"{live.ws_url}/api/v1/events/stream?last_event_id={ids[1]}"
    async with connect(url) as ws:
        replayed = [await next_of(ws, "event") for _ in range(2)]
        assert [m["id"] for m in replayed] == ids[2:]
        assert all(m["replayed"] for m in replayed)
        new = await post_events(live, auth, [{"event_type": "after"}])
        live_message = await next_of(ws, "event")
        assert live_message["id"] == new[0] and live_message["replayed"] is False

    # the same through the Last-Event-ID header, with a filter
    async with connect(
        f"{live.ws_url}/api/v1/events/stream?event_type=e3",
        additional_headers={"Last-Event-ID": ids[0]},
    ) as ws:
        message = await next_of(ws, "event")
        assert message["id"] == ids[3]
        done = await next_of(ws, "replay_done")
        assert done["count"] == 1


async def test_resume_drops_late_live_copies_of_older_events(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, auth: dict[str, str]
) -> None:
    """An event published before the client connected can reach the hub after the replay:
    the client already has it (or asked to start after it), so it is not sent again."""
    settings = make_settings()
    async with serve(create_app(settings)) as server:
        ids = await post_events(server, auth, [{"event_type": f"old{i}"} for i in range(3)])
        async with httpx.AsyncClient(base_url=server.url) as http:
            listed = (await http.get("/api/v1/events", params={"limit": 10})).json()["items"]
        stored = {e["id"]: e for e in listed}
        url = f"{server.ws_url}/api/v1/events/stream?last_event_id={ids[1]}"
        async with connect(url) as ws:
            assert (await next_of(ws, "event"))["id"] == ids[2]
            await next_of(ws, "replay_done")
            # late copies of events at or before the resume horizon, as the hub would relay them
            late = [stored[ids[0]], stored[ids[2]]]
            await publish_events(redis, late, stream=settings.event_stream)
            new = await post_events(server, auth, [{"event_type": "new"}])
            message = await next_of(ws, "event")
            assert message["id"] == new[0] and message["replayed"] is False


async def test_resume_by_first_message_and_unknown_id(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, auth: dict[str, str]
) -> None:
    async with serve(create_app(make_settings(ws_resume_wait=2.0))) as server:
        ids = await post_events(server, auth, [{"event_type": "one"}, {"event_type": "two"}])
        async with connect(f"{server.ws_url}/api/v1/events/stream") as ws:
            await ws.send(json.dumps({"last_event_id": ids[0]}))
            message = await next_of(ws, "event")
            assert message["id"] == ids[1] and message["replayed"] is True

        unknown = "00000000-0000-4000-8000-000000000000"
        async with connect(f"{server.ws_url}/api/v1/events/stream?last_event_id={unknown}") as ws:
            error = await next_of(ws, "error")
            assert error["error"]["code"] == "unknown_event_id"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404

        async with connect(f"{server.ws_url}/api/v1/events/stream?agent_id=nope") as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert error["type"] == "error"
            assert error["error"] == {"code": "invalid_input", "message": "agent_id: not a UUID"}
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.slow
async def test_slow_client_is_disconnected_and_never_stalls_others(
    make_settings: Callable[..., ApiSettings], redis: RedisClient
) -> None:
    settings = make_settings(ws_queue_size=64)
    count, size, burst = 400, 48_000, 20
    async with serve(create_app(settings), ws_per_message_deflate=False) as server:
        url = f"{server.ws_url}/api/v1/events/stream"
        # the slow client never reads: its socket buffers fill, then its queue overflows
        slow = await connect(url, max_queue=1, compression=None)
        fast = await connect(url, max_size=None, compression=None)
        try:
            hub = server.app.state.resources.hub
            await wait_until(lambda: len(hub.clients) == 2, 10)  # both in the fan-out
            received: list[str] = []

            async def read_fast() -> None:
                while len(received) < count:
                    message = json.loads(await fast.recv())
                    if message["type"] == "event":
                        received.append(message["id"])

            reader = asyncio.create_task(read_fast())
            sent: list[str] = []
            for i in range(0, count, burst):
                batch = [
                    {
                        "id": f"ev-{j}",
                        "event_type": "bulk",
                        "payload": {"blob": base64.b64encode(os.urandom(size)).decode()},
                    }
                    for j in range(i, i + burst)
                ]
                await publish_events(redis, batch, stream=settings.event_stream)
                sent += [e["id"] for e in batch]
                # a client that keeps up
                expected = len(sent)
                await wait_until(lambda n=expected: len(received) >= n, 30)  # type: ignore[misc]
            await asyncio.wait_for(reader, 60)
            assert received == sent  # every event, in order, despite the slow client

            await wait_until(lambda: len(hub.clients) <= 1, 20)
            async with httpx.AsyncClient(base_url=server.url) as http:
                metrics = (await http.get("/metrics")).text
            assert "cesar_api_websocket_slow_disconnects_total 1.0" in metrics
            assert "cesar_api_websocket_connections 1.0" in metrics
            # the slow client, reading at last, finds its connection closed
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(30):
                    while True:
                        await slow.recv()
        finally:
            await fast.close()
            await slow.close()


async def test_an_idle_client_is_pinged(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, auth: dict[str, str]
) -> None:
    """One timer pings every idle client (not one timer per message): a client that received
    nothing for a ping interval gets a ping within about one and a half intervals."""
    async with (
        serve(create_app(make_settings(ws_ping_interval=0.4))) as server,
        connect(f"{server.ws_url}/api/v1/events/stream") as ws,
    ):
        assert json.loads(await ws.recv())["type"] == "hello"
        loop = asyncio.get_running_loop()
        started = loop.time()
        ping = await next_of(ws, "ping", timeout=5)
        assert ping["ts"]
        assert 0.3 <= loop.time() - started <= 2.0
        await next_of(ws, "ping", timeout=2)  # and again while it stays idle
