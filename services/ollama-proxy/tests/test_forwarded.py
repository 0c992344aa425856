"""Who may name the client address: ``X-Forwarded-For`` counts only from FORWARDED_ALLOW_IPS
(default: nobody), so a local client cannot dodge the per-address limit by naming its own
address. Served by a real uvicorn with the proxy options ``cesar-ollama-proxy`` launches it
with (read from ``main()`` itself)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cesar_ollama_proxy import main as proxy_main
from cesar_ollama_proxy.app import create_app
from cesar_ollama_proxy.main import proxy_options
from cesar_ollama_proxy.settings import load_proxy_settings
from cesar_ollama_proxy.testing import FakeOllama, serve_app

PROXY_OPTIONS = ("proxy_headers", "forwarded_allow_ips")


def launch_options(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, Any]:
    """The uvicorn options ``cesar-ollama-proxy`` would start with under ``env``."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    captured: dict[str, Any] = {}
    monkeypatch.setattr(proxy_main, "configure_logging", lambda *a, **k: None)
    monkeypatch.setattr(proxy_main, "install_alert_handler", lambda *a, **k: None)
    monkeypatch.setattr(proxy_main.uvicorn, "run", lambda app, **kwargs: captured.update(kwargs))
    proxy_main.main()
    return {name: captured[name] for name in PROXY_OPTIONS if name in captured}


async def statuses_with_spoofed_addresses(options: dict[str, Any], count: int) -> list[int]:
    settings = load_proxy_settings()
    async with (
        serve_app(create_app(settings), **options) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        return [
            (await http.get("/api/tags", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
            for i in range(count)
        ]


@pytest.fixture
def env(fake: FakeOllama, redis_url: str, redis_prefix: str, redis: object) -> dict[str, str]:
    return {
        "OLLAMA_URL": fake.url,
        "REDIS_URL": redis_url,
        "PROXY_REDIS_PREFIX": redis_prefix,
        "DATABASE_URL": "",
        "PROXY_RATE_LIMIT_ADDRESS": "3/hour",
        "PROXY_RATE_LIMIT_CLIENT": "1000/hour",
        "LOG_JSON": "false",
    }


async def test_spoofed_forwarded_for_from_a_local_client_keeps_the_limit_key(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    options = launch_options(monkeypatch, env)
    assert await statuses_with_spoofed_addresses(options, 5) == [200, 200, 200, 429, 429]


async def test_a_trusted_proxy_names_the_client(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    options = launch_options(monkeypatch, {**env, "FORWARDED_ALLOW_IPS": "127.0.0.1"})
    # behind a trusted proxy every client has its own bucket
    assert await statuses_with_spoofed_addresses(options, 5) == [200] * 5


def test_proxy_options_follow_the_setting() -> None:
    assert proxy_options(load_proxy_settings(FORWARDED_ALLOW_IPS="")) == {
        "proxy_headers": False,
        "forwarded_allow_ips": [],
    }
    behind = load_proxy_settings(FORWARDED_ALLOW_IPS="10.0.0.0/8, 192.168.1.2")
    assert proxy_options(behind) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.0/8", "192.168.1.2"],
    }
