"""Fixtures: a fake Ollama in the test's event loop and in-process proxies in front of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cesar_core.redis import RedisClient
from cesar_ollama_proxy.app import create_app
from cesar_ollama_proxy.settings import ProxySettings, load_proxy_settings
from cesar_ollama_proxy.testing import FakeOllama, serve_app
from fastapi import FastAPI


@dataclass
class RunningProxy:
    url: str
    app: FastAPI
    settings: ProxySettings

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)


ProxyFactory = Callable[..., contextlib.AbstractAsyncContextManager[RunningProxy]]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    ollama = FakeOllama()
    async with ollama.serve():
        try:
            yield ollama
        finally:
            ollama.release()


@pytest.fixture
def settings_for(
    fake: FakeOllama, redis_url: str, redis_prefix: str
) -> Callable[..., ProxySettings]:
    def build(**overrides: Any) -> ProxySettings:
        values: dict[str, Any] = {
            "OLLAMA_URL": fake.url,
            "REDIS_URL": redis_url,
            "PROXY_REDIS_PREFIX": redis_prefix,
            "DATABASE_URL": None,
            "PROXY_RATE_LIMIT_CLIENT": "10000/minute",
            "PROXY_RATE_LIMIT_MODEL": "10000/minute",
            "LOG_JSON": False,
        }
        values.update(overrides)
        return load_proxy_settings(**values)

    return build


@pytest.fixture
def start_proxy(settings_for: Callable[..., ProxySettings], redis: RedisClient) -> ProxyFactory:
    """``async with start_proxy(**settings) as proxy``: an in-process proxy on a free port.
    Depends on ``redis`` so the keys under the test's prefix are deleted afterwards."""

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[RunningProxy]:
        settings = settings_for(**overrides)
        app = create_app(settings)
        async with serve_app(app) as url:
            yield RunningProxy(url, app, settings)

    return start


@pytest_asyncio.fixture
async def proxy(start_proxy: ProxyFactory) -> AsyncIterator[RunningProxy]:
    async with start_proxy() as running:
        yield running
