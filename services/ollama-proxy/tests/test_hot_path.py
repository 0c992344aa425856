"""The hot path: the in-process copy of the cache (LRU by bytes, TTL never beyond Redis's),
and limits spent from leases (the shared limiter of ``cesar_core.ratelimit``)."""

from __future__ import annotations

from cesar_core.redis import create_redis
from cesar_ollama_proxy.cache import CachedResponse, LocalCache
from cesar_ollama_proxy.testing import FakeOllama, free_port, wait_until

MODEL = "llama3.2:1b"
BODY = {"model": MODEL, "prompt": "hot", "stream": False, "options": {"temperature": 0}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _answer(size: int) -> CachedResponse:
    return CachedResponse("application/json", b"x" * size)


def test_local_cache_evicts_least_recently_used_by_bytes() -> None:
    overhead = LocalCache.ENTRY_OVERHEAD + len("application/json") + 1  # one-letter keys
    cache = LocalCache(3 * (100 + overhead), 60, clock=Clock())
    for key in "abc":
        cache.put(key, _answer(100), 3600)
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", _answer(100), 3600)
    assert cache.get("b") is None  # the least recently used went
    assert [k for k in "acd" if cache.get(k) is not None] == ["a", "c", "d"]
    assert cache.bytes == 3 * (100 + overhead) and len(cache) == 3
    cache.put("e", _answer(10_000), 3600)  # larger than the whole budget: not kept
    assert cache.get("e") is None and len(cache) == 3


def test_local_cache_entry_lives_the_shorter_of_its_ttl_and_redis() -> None:
    clock = Clock()
    cache = LocalCache(1 << 20, 60, clock=clock)
    cache.put("short", _answer(1), 5)  # 5 s left in Redis
    cache.put("long", _answer(1), 86_400)
    clock.now += 6
    assert cache.get("short") is None and cache.get("long") is not None
    clock.now += 55
    assert cache.get("long") is None
    assert cache.bytes == 0 and len(cache) == 0
    off = LocalCache(0, 60)
    off.put("k", _answer(1), 60)
    assert off.get("k") is None


async def test_hits_are_served_from_the_local_copy_without_redis(
    start_proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    async def stored() -> bool:
        return bool([k async for k in redis.scan_iter(match=f"{redis_prefix}cache:*")])

    async with start_proxy() as running, running.client() as http:
        first = await http.post("/api/generate", json=BODY)
        await wait_until(stored, "the answer in the cache")
        local = running.app.proxy.cache.local
        assert len(local) == 1  # filled on the store
        down = create_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=1.0)
        running.app.proxy.cache.redis = down  # any Redis read would now fail and be counted
        second = await http.post("/api/generate", json=BODY)
        metrics = (await http.get("/metrics")).text
        await down.aclose()
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert fake.requests["/api/generate"] == 1
    assert 'ollama_proxy_redis_errors_total{op="cache_get"}' not in metrics
    assert "ollama_proxy_cache_l1_entries 1.0" in metrics


async def test_a_redis_hit_fills_the_local_copy_for_at_most_its_redis_life(
    start_proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    async def stored() -> bool:
        return bool([k async for k in redis.scan_iter(match=f"{redis_prefix}cache:*")])

    async with start_proxy() as writer, writer.client() as http:  # another replica stored it
        await http.post("/api/generate", json=BODY)
        await wait_until(stored, "the answer in the cache")
    (key,) = [k async for k in redis.scan_iter(match=f"{redis_prefix}cache:*")]
    await redis.expire(key, 5)
    async with start_proxy() as reader, reader.client() as http:
        local = reader.app.proxy.cache.local
        assert len(local) == 0
        hit = await http.post("/api/generate", json=BODY)
        expires_at = local._entries[key.decode()][0]
        left = expires_at - local._clock()
    assert hit.headers["x-cache"] == "HIT"
    assert 0 < left <= 5  # not the 60 s local TTL: Redis had 5 s left


async def test_limits_are_leased_so_most_requests_skip_redis(
    start_proxy, redis, redis_prefix: str
) -> None:
    """10000/minute leases 50 at a time: 60 requests take two leases of the client budget."""
    async with start_proxy() as running, running.client() as http:
        statuses = {(await http.get("/api/tags")).status_code for _ in range(60)}
    keys = [k async for k in redis.scan_iter(match=f"{redis_prefix}ratelimit:client:*")]
    assert statuses == {200}
    assert len(keys) <= 2  # one window (two if the minute turned meanwhile)
    assert sum([int(await redis.get(k)) for k in keys]) in (100, 150)
