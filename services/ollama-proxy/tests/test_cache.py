"""The response cache against real Redis: hits for streamed and non-streamed answers,
bypass, force, and what is never cached."""

from __future__ import annotations

from typing import Any

import ollama
from cesar_ollama_proxy.testing import FakeOllama, wait_until

MODEL = "llama3.2:1b"
DETERMINISTIC = {"model": MODEL, "prompt": "cache me", "options": {"temperature": 0}}


async def _keys(redis: Any, prefix: str) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"{prefix}cache:*")]


async def _stored(redis: Any, prefix: str, count: int) -> None:
    async def enough() -> bool:
        return len(await _keys(redis, prefix)) >= count

    await wait_until(enough, f"{count} cache entries")


async def test_non_streamed_answer_is_served_from_cache_byte_for_byte(
    proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    body = {**DETERMINISTIC, "stream": False}
    async with proxy.client() as http:
        first = await http.post("/api/generate", json=body)
        await _stored(redis, redis_prefix, 1)
        second = await http.post("/api/generate", json={**body, "keep_alive": "10m"})
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    # created_at differs on every upstream answer: identical bytes mean a replay
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    assert fake.requests["/api/generate"] == 1
    ttl = await redis.ttl((await _keys(redis, redis_prefix))[0])
    assert 0 < ttl <= proxy.settings.cache_ttl_seconds


async def test_streamed_answer_is_replayed_as_the_same_ndjson_lines(
    proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    async with proxy.client() as http:
        async with http.stream("POST", "/api/generate", json=DETERMINISTIC) as resp:
            first = [line async for line in resp.aiter_lines()]
            assert resp.headers["x-cache"] == "MISS"
        await _stored(redis, redis_prefix, 1)
        async with http.stream("POST", "/api/generate", json=DETERMINISTIC) as resp:
            second = [line async for line in resp.aiter_lines()]
            assert resp.headers["x-cache"] == "HIT"
            assert resp.headers["content-type"] == "application/x-ndjson"
        # the non-streamed form of the same request is a different entry (different shape)
        plain = await http.post("/api/generate", json={**DETERMINISTIC, "stream": False})
    assert second == first and len(first) == 6
    assert plain.headers["x-cache"] == "MISS"
    assert fake.requests["/api/generate"] == 2

    client = ollama.AsyncClient(host=proxy.url)
    parts = [p async for p in await client.generate(MODEL, "cache me", stream=True,
                                                     options={"temperature": 0})]  # fmt: skip
    assert parts[-1].done and fake.requests["/api/generate"] == 2


async def test_chat_with_seed_embeddings_and_v1_sse_are_cached(
    proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    messages = [{"role": "user", "content": "seeded"}]
    first = await client.chat(MODEL, messages, options={"seed": 42, "temperature": 0.9})
    await client.embed("nomic-embed-text", "vector me")
    sse = {"model": MODEL, "messages": messages, "temperature": 0, "stream": True}
    async with proxy.client() as http:
        one = await http.post("/v1/chat/completions", json=sse)
        await _stored(redis, redis_prefix, 3)
        two = await http.post("/v1/chat/completions", json=sse)
    again = await client.chat(MODEL, messages, options={"seed": 42, "temperature": 0.9})
    await client.embed("nomic-embed-text", "vector me")
    assert again == first
    assert two.headers["x-cache"] == "HIT" and two.text == one.text
    assert two.text.rstrip().endswith("data: [DONE]")
    assert fake.requests["/api/chat"] == 1 and fake.requests["/api/embed"] == 1
    assert fake.requests["/v1/chat/completions"] == 1


async def test_no_cache_and_bypass_are_never_cached(
    proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    body = {**DETERMINISTIC, "stream": False}
    async with proxy.client() as http:
        for headers in ({"Cache-Control": "no-cache"}, {"X-Cache": "bypass"}) * 2:
            resp = await http.post("/api/generate", json=body, headers=headers)
            assert resp.headers["x-cache"] == "BYPASS"
    assert fake.requests["/api/generate"] == 4
    assert await _keys(redis, redis_prefix) == []


async def test_non_deterministic_requests_skip_the_cache_unless_forced(
    proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    body = {"model": MODEL, "prompt": "creative", "stream": False, "options": {"temperature": 0.8}}
    async with proxy.client() as http:
        for _ in range(2):
            assert (await http.post("/api/generate", json=body)).headers["x-cache"] == "SKIP"
        forced = await http.post("/api/generate", json=body, headers={"X-Cache": "force"})
        await _stored(redis, redis_prefix, 1)
        hit = await http.post("/api/generate", json=body, headers={"X-Cache": "force"})
    assert (forced.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.content == forced.content
    assert fake.requests["/api/generate"] == 3


async def test_cache_mode_all_and_off(start_proxy, fake: FakeOllama, redis, redis_prefix) -> None:
    body = {"model": MODEL, "prompt": "any", "stream": False}
    async with start_proxy(PROXY_CACHE_MODE="all") as running, running.client() as http:
        await http.post("/api/generate", json=body)
        await _stored(redis, redis_prefix, 1)
        assert (await http.post("/api/generate", json=body)).headers["x-cache"] == "HIT"
    async with start_proxy(PROXY_CACHE_MODE="off") as running, running.client() as http:
        resp = await http.post("/api/generate", json={**DETERMINISTIC, "stream": False})
        assert resp.headers["x-cache"] == "SKIP"
    assert fake.requests["/api/generate"] == 2


async def test_errors_are_not_cached(proxy, fake: FakeOllama, redis, redis_prefix) -> None:
    body = {**DETERMINISTIC, "stream": False, "model": "missing-model"}
    async with proxy.client() as http:
        for _ in range(2):
            resp = await http.post("/api/generate", json=body)
            assert (resp.status_code, resp.headers["x-cache"]) == (404, "MISS")
    assert fake.requests["/api/generate"] == 2
    assert await _keys(redis, redis_prefix) == []


async def test_answers_larger_than_the_cache_limit_are_not_stored(
    start_proxy, fake: FakeOllama, redis, redis_prefix
) -> None:
    fake.config.tokens = 300  # ~30 kB of NDJSON
    async with start_proxy(PROXY_CACHE_MAX_BYTES=4096) as running, running.client() as http:
        for _ in range(2):
            resp = await http.post("/api/generate", json=DETERMINISTIC)
            assert resp.headers["x-cache"] == "MISS" and resp.text.count("\n") == 301
    assert await _keys(redis, redis_prefix) == []
