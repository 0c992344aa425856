"""Rate limits per client key and per model, shared through Redis.

The windows are clock-aligned fixed windows (``cesar_core.ratelimit``); the tests use hourly
limits so a window boundary practically never falls inside a test."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import ollama
import pytest
from cesar_ollama_proxy.testing import free_port, wait_until

MODEL = "llama3.2:1b"


async def test_client_limit_is_429_in_ollama_shape_with_retry_after(start_proxy) -> None:
    async with start_proxy(PROXY_RATE_LIMIT_CLIENT="3/hour") as running:
        async with running.client(headers={"Authorization": "Bearer alice"}) as alice:
            statuses = [(await alice.get("/api/tags")).status_code for _ in range(3)]
            refused = await alice.post("/api/generate", json={"model": MODEL, "prompt": "x"})
            v1 = await alice.post("/v1/chat/completions", json={"model": MODEL, "messages": []})
        async with running.client(headers={"Authorization": "Bearer bob"}) as bob:
            other = await bob.get("/api/tags")
        client = ollama.AsyncClient(host=running.url, headers={"Authorization": "Bearer alice"})
        with pytest.raises(ollama.ResponseError) as raised:
            await client.list()
        async with running.client() as anonymous:
            health = await anonymous.get("/livez")
            metrics = (await anonymous.get("/metrics")).text
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("rate limit exceeded for this client")
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert v1.status_code == 429 and "rate limit exceeded" in v1.json()["error"]["message"]
    assert other.status_code == 200  # a different bearer token is a different client
    assert raised.value.status_code == 429
    assert health.status_code == 200  # health and metrics are not limited
    assert 'ollama_proxy_rate_limited_total{scope="client"} 3.0' in metrics


async def test_model_limit_counts_upstream_work_not_cache_hits(
    start_proxy, fake, redis, redis_prefix: str
) -> None:
    body = {"model": MODEL, "prompt": "m", "stream": False, "options": {"temperature": 0}}

    async def stored() -> bool:
        return bool([k async for k in redis.scan_iter(match=f"{redis_prefix}cache:*")])

    async with (
        start_proxy(PROXY_RATE_LIMIT_MODEL="2/hour") as running,
        running.client() as http,
    ):
        first = await http.post("/api/generate", json=body)
        await wait_until(stored, "the first answer in the cache")
        hits = [(await http.post("/api/generate", json=body)).headers["x-cache"] for _ in "abc"]
        second = await http.post("/api/generate", json={**body, "prompt": "n"})
        third = await http.post("/api/generate", json={**body, "prompt": "o"})
        other_model = await http.post(
            "/api/embed", json={"model": "nomic-embed-text", "input": "x"}
        )
    assert first.status_code == 200 and second.status_code == 200
    assert hits == ["HIT", "HIT", "HIT"]
    assert third.status_code == 429
    assert third.json()["error"].startswith("rate limit exceeded for this model")
    assert other_model.status_code == 200


@pytest.fixture
def fake_process() -> Iterator[str]:
    """The fake Ollama as its own process, through its documented command line."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cesar_ollama_proxy.testing.fake_ollama", "--port", str(port)]
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _spawn_proxy(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cesar_ollama_proxy"], env=env)


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:

        async def ready() -> bool:
            assert proc.poll() is None, f"{url} exited with {proc.returncode}"
            try:
                return (await http.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ready, f"{url} to be ready", attempts=3000)


async def test_a_second_process_spends_the_same_budget(
    start_proxy, fake, redis_url: str, redis_prefix: str
) -> None:
    """Fast check that the limit is not kept per process: this test's in-process proxy and one
    proxy process share one client budget (the slow test below runs two full processes)."""
    limit = {"PROXY_RATE_LIMIT_CLIENT": "3/day", "PROXY_RATE_LIMIT_MODEL": ""}
    port = free_port()
    env = {
        **os.environ,
        "OLLAMA_URL": fake.url,
        "REDIS_URL": redis_url,
        "PROXY_REDIS_PREFIX": redis_prefix,
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(port),
        "LOG_JSON": "false",
        **limit,
    }
    env.pop("DATABASE_URL", None)
    env.pop("COCKROACH_DB_URL", None)
    other = _spawn_proxy(env)
    headers = {"Authorization": "Bearer one-client"}
    try:
        await _wait_ready(f"http://127.0.0.1:{port}", other)
        async with (
            start_proxy(**limit) as here,
            here.client(headers=headers) as a,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as b,
        ):
            statuses = [(await http.get("/api/tags")).status_code for http in (a, b, a, b)]
    finally:
        other.terminate()
        other.wait(timeout=30)
    assert statuses == [200, 200, 200, 429]


@pytest.mark.slow
async def test_limits_are_shared_by_two_proxy_processes(
    fake_process: str, redis_url: str, redis_prefix: str, redis
) -> None:
    env = {
        **os.environ,
        "OLLAMA_URL": fake_process,
        "REDIS_URL": redis_url,
        "PROXY_REDIS_PREFIX": redis_prefix,
        "PROXY_RATE_LIMIT_CLIENT": "5/hour",
        "PROXY_RATE_LIMIT_MODEL": "",
        "PROXY_HOST": "127.0.0.1",
        "LOG_JSON": "false",
    }
    env.pop("DATABASE_URL", None)
    env.pop("COCKROACH_DB_URL", None)
    procs, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(_spawn_proxy({**env, "PROXY_PORT": str(port)}))
            urls.append(f"http://127.0.0.1:{port}")
        await asyncio.gather(*(_wait_ready(u, p) for u, p in zip(urls, procs, strict=True)))
        headers = {"Authorization": "Bearer shared-client"}
        statuses: list[int] = []
        async with (
            httpx.AsyncClient(base_url=urls[0], headers=headers) as a,
            httpx.AsyncClient(base_url=urls[1], headers=headers) as b,
        ):
            for i in range(6):  # alternate between the replicas: 3 + 3 requests
                http = a if i % 2 == 0 else b
                statuses.append((await http.post("/api/generate", json={
                    "model": MODEL, "prompt": f"p{i}", "stream": False}
                )).status_code)  # fmt: skip
            client = ollama.AsyncClient(host=urls[1], headers=headers)
            with pytest.raises(ollama.ResponseError) as raised:
                await client.generate(MODEL, "once more")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    assert statuses == [200, 200, 200, 200, 200, 429]
    assert raised.value.status_code == 429
    # a clean shutdown on SIGTERM (uvicorn re-raises the signal once it has finished)
    assert all(proc.returncode in (0, -15) for proc in procs)
