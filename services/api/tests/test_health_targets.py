"""What /health says about a database it cannot reach: the host, never the URL's secrets."""

from __future__ import annotations

from collections.abc import Callable

from cesar_api.app import create_app
from cesar_api.settings import ApiSettings

from .conftest import client_for, free_port

FAKE_PW = "fake-" + "pw-7781"  # built at runtime: no credential-looking URL in the file


async def test_health_names_an_unreachable_database_by_host_only(
    make_settings: Callable[..., ApiSettings],
) -> None:
    port = free_port()
    url = f"postgresql://cesar@127.0.0.1:{port}/cesar?sslmode=disable&password={FAKE_PW}"
    async with client_for(create_app(make_settings(database_url=url))) as client:
        health = await client.get("/health")
        ready = await client.get("/readyz")
    assert health.status_code == 503 and ready.status_code == 503
    error = health.json()["components"]["database"]["error"]
    assert f"127.0.0.1:{port}/cesar" in error
    assert FAKE_PW not in health.text and "password" not in health.text
    assert FAKE_PW not in ready.text
