"""The one-round-trip admission (limits + cache lookup in one Lua script) and its fallbacks."""

from __future__ import annotations

from cesar_ollama_proxy.testing import FakeOllama, wait_until

MODEL = "llama3.2:1b"
BODY = {"model": MODEL, "prompt": "hot", "stream": False, "options": {"temperature": 0}}


async def test_admission_script_shares_limits_key_layout(start_proxy) -> None:
    """What the script counts is what ``limits`` reads (its window stats give Retry-After)."""
    async with start_proxy(PROXY_RATE_LIMIT_CLIENT="10/minute") as running:
        async with running.client() as http:
            statuses = [(await http.get("/api/tags")).status_code for _ in range(3)]
        limiter = running.app.proxy.limiter
        item = limiter.client_limits[0]
        stats = await limiter.limiter.get_window_stats(item, "client", "addr:127.0.0.1")
    assert statuses == [200, 200, 200]
    assert stats.remaining == 7


async def test_admission_script_is_reloaded_after_noscript(
    start_proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    async def stored() -> bool:
        return bool([k async for k in redis.scan_iter(match=f"{redis_prefix}cache:*")])

    async with start_proxy() as running, running.client() as http:
        first = await http.post("/api/generate", json=BODY)
        await wait_until(stored, "the answer in the cache")
        # as after a Redis restart or SCRIPT FLUSH: the known sha is not in Redis
        running.app.proxy.limiter._admit_sha = "0" * 40
        second = await http.post("/api/generate", json=BODY)
        metrics = (await http.get("/metrics")).text
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    assert second.status_code == 200 and second.headers["x-cache"] == "HIT"
    assert second.content == first.content
    assert "ollama_proxy_redis_errors_total{" not in metrics


async def test_sliding_window_counter_goes_through_limits_call_by_call(
    start_proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    async def stored() -> bool:
        return bool([k async for k in redis.scan_iter(match=f"{redis_prefix}cache:*")])

    settings = {
        "PROXY_RATE_LIMIT_CLIENT": "3/minute",
        "PROXY_RATE_LIMIT_STRATEGY": "sliding-window-counter",
    }
    async with start_proxy(**settings) as running, running.client() as http:
        first = await http.post("/api/generate", json=BODY)
        await wait_until(stored, "the answer in the cache")
        hit = await http.post("/api/generate", json=BODY)
        tags = await http.get("/api/tags")
        refused = await http.get("/api/tags")
    assert first.headers["x-cache"] == "MISS" and hit.headers["x-cache"] == "HIT"
    assert hit.content == first.content
    assert tags.status_code == 200
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
