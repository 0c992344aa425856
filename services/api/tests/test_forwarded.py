"""Who may name the client address: ``X-Forwarded-For`` counts only from FORWARDED_ALLOW_IPS
(default: nobody), so a client cannot dodge the per-address limit by naming its own address.
Served by a real uvicorn with the options ``cesar-api`` launches it with."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from cesar_api.app import create_app
from cesar_api.main import proxy_options
from cesar_api.settings import ApiSettings
from cesar_core.redis import RedisClient

from .conftest import serve


async def statuses_with_spoofed_addresses(settings: ApiSettings, count: int) -> list[int]:
    async with (
        serve(create_app(settings), **proxy_options(settings)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        return [
            (
                await http.get("/api/v1/agents", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            ).status_code
            for i in range(count)
        ]


async def test_spoofed_forwarded_for_from_an_untrusted_peer_keeps_the_limit_key(
    make_settings: Callable[..., ApiSettings], redis: RedisClient
) -> None:
    settings = make_settings(rate_limit_per_address="3/hour")
    assert settings.forwarded_allow_ips == ""  # the default trusts no proxy, loopback included
    assert await statuses_with_spoofed_addresses(settings, 5) == [200, 200, 200, 429, 429]


async def test_a_trusted_proxy_names_the_client(
    make_settings: Callable[..., ApiSettings], redis: RedisClient
) -> None:
    settings = make_settings(rate_limit_per_address="3/hour", forwarded_allow_ips="127.0.0.1")
    # behind a trusted proxy every client has its own bucket
    assert await statuses_with_spoofed_addresses(settings, 5) == [200] * 5


def test_proxy_options_follow_the_setting(make_settings: Callable[..., ApiSettings]) -> None:
    assert proxy_options(make_settings()) == {"proxy_headers": False, "forwarded_allow_ips": []}
    behind = make_settings(forwarded_allow_ips="10.0.0.0/8, 192.168.1.2")
    assert proxy_options(behind) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.0/8", "192.168.1.2"],
    }
