"""The event stream's limits and key handling, over a real uvicorn with the `websockets` client:
open streams per address, new streams per address over time, the key only in a header or the
first message (never the query string), each refusal an `error` message and a close code."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cesar_api.app import create_app
from cesar_api.settings import ApiSettings
from cesar_core.redis import RedisClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .conftest import MakeKey, serve

STREAM = "/api/v1/events/stream"


async def first_message(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await ws.recv()))


async def refused(ws: ClientConnection) -> tuple[dict[str, Any], int, str]:
    """The error message a refused socket gets, then its close code and reason."""
    message = await first_message(ws)
    assert message["type"] == "error", message
    try:
        extra = await ws.recv()
        raise AssertionError(f"still open after the error: {extra!r}")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return message["error"], closed.rcvd.code, closed.rcvd.reason


async def test_api_key_in_the_query_string_is_refused(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, make_key: MakeKey
) -> None:
    key = await make_key("reader", ("read",))
    for settings in (make_settings(), make_settings(reads_require_key=True)):
        async with (
            serve(create_app(settings)) as server,
            connect(f"{server.ws_url}{STREAM}?api_key={key}") as ws,
        ):
            error, code, reason = await refused(ws)
            assert error["code"] == "api_key_in_query"
            assert "Authorization: Bearer" in error["message"]
            assert code == 1008 and "api_key" in reason


async def test_the_key_comes_in_a_header_or_the_first_message(
    make_settings: Callable[..., ApiSettings], redis: RedisClient, make_key: MakeKey
) -> None:
    key = await make_key("reader", ("read",))
    settings = make_settings(reads_require_key=True, ws_auth_timeout=0.3)
    async with serve(create_app(settings)) as server:
        url = f"{server.ws_url}{STREAM}"
        async with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            assert (await first_message(ws))["type"] == "hello"
        async with connect(url) as ws:
            await ws.send(json.dumps({"api_key": key}))
            assert (await first_message(ws))["type"] == "hello"
        async with connect(url) as ws:  # no key at all
            error, code, _ = await refused(ws)
            assert error["code"] == "unauthorized" and "api_key" in error["message"]
            assert code == 1008
        async with connect(url) as ws:
            await ws.send(json.dumps({"api_key": "not-a-key"}))
            error, code, _ = await refused(ws)
            assert error["code"] == "unauthorized" and code == 1008


async def test_open_streams_per_address_are_capped(
    make_settings: Callable[..., ApiSettings], redis: RedisClient
) -> None:
    settings = make_settings(ws_max_per_address=2)
    async with serve(create_app(settings)) as server:
        url = f"{server.ws_url}{STREAM}"
        async with connect(url) as one, connect(url) as two:
            for ws in (one, two):
                assert (await first_message(ws))["type"] == "hello"
            async with connect(url) as three:
                error, code, reason = await refused(three)
                assert error["code"] == "too_many_streams"
                assert "127.0.0.1" in error["message"] and "at most 2" in error["message"]
                assert code == 1013 and "too many" in reason
        # the slots are given back when the streams close
        async with connect(url) as again:
            assert (await first_message(again))["type"] == "hello"


async def test_new_streams_per_address_are_rate_limited(
    make_settings: Callable[..., ApiSettings], redis: RedisClient
) -> None:
    settings = make_settings(ws_connect_rate="3/hour")
    async with serve(create_app(settings)) as server:
        url = f"{server.ws_url}{STREAM}"
        for _ in range(3):
            async with connect(url) as ws:
                assert (await first_message(ws))["type"] == "hello"
        async with connect(url) as ws:
            error, code, _ = await refused(ws)
            assert error["code"] == "rate_limited" and "retry in" in error["message"]
            assert code == 1013
