"""Prometheus metrics, the hourly rows in llm_cache_metrics, and prompts kept out of logs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import ollama
import pytest
from cesar_core.db import Database
from cesar_ollama_proxy.aggregates import Aggregator, hour_of
from cesar_ollama_proxy.testing import FakeOllama, wait_until

MODEL = "llama3.2:1b"
ROWS = """
SELECT model, requests, cache_hits, cache_misses, prompt_tokens, completion_tokens,
       errors, total_latency_ms, max_latency_ms, bucket_start
FROM llm_cache_metrics ORDER BY model
"""


async def _traffic(url: str, fake: FakeOllama, redis, prefix: str) -> None:
    client = ollama.AsyncClient(host=url)
    await client.generate(MODEL, "count me", options={"temperature": 0})  # miss, 2+5 tokens

    async def stored() -> bool:
        return bool([k async for k in redis.scan_iter(match=f"{prefix}cache:*")])

    await wait_until(stored, "the cache entry")
    await client.generate(MODEL, "count me", options={"temperature": 0})  # hit
    _ = [p async for p in await client.chat(MODEL, [{"role": "user", "content": "a b c"}],
                                             stream=True)]  # fmt: skip
    with pytest.raises(ollama.ResponseError):
        await client.generate("no-such-model", "x")


async def test_prometheus_metrics(proxy, fake: FakeOllama, redis, redis_prefix: str) -> None:
    await _traffic(proxy.url, fake, redis, redis_prefix)
    async with proxy.client() as http:
        text = (await http.get("/metrics")).text
    for line in (
        'ollama_proxy_requests_total{model="llama3.2:1b",outcome="ok",route="generate"} 2.0',
        'ollama_proxy_requests_total{model="llama3.2:1b",outcome="ok",route="chat"} 1.0',
        'ollama_proxy_requests_total{model="no-such-model",outcome="client_error",route="generate"} 1.0',
        'ollama_proxy_cache_total{result="hit",route="generate"} 1.0',
        'ollama_proxy_cache_total{result="miss",route="generate"} 1.0',
        'ollama_proxy_cache_total{result="skip",route="generate"} 1.0',
        'ollama_proxy_cache_total{result="skip",route="chat"} 1.0',
        'ollama_proxy_tokens_total{kind="prompt",model="llama3.2:1b"} 5.0',
        'ollama_proxy_tokens_total{kind="completion",model="llama3.2:1b"} 10.0',
        'ollama_proxy_time_to_first_token_seconds_count{model="llama3.2:1b",route="chat"} 1.0',
        'ollama_proxy_request_duration_seconds_count{cache="hit",route="generate"} 1.0',
    ):
        assert line in text, line


async def test_model_labels_are_bounded(start_proxy) -> None:
    async with start_proxy(PROXY_MAX_MODEL_LABELS=1) as running, running.client() as http:
        for name in ("m1", "m2", "m3"):
            await http.post("/api/generate", json={"model": name, "prompt": "x"})
        text = (await http.get("/metrics")).text
    assert 'model="m1",outcome="client_error",route="generate"} 1.0' in text
    assert 'model="other",outcome="client_error",route="generate"} 2.0' in text
    assert 'model="m2"' not in text


async def test_hourly_rows_are_flushed_at_shutdown_and_add_up(
    start_proxy, fake: FakeOllama, redis, redis_prefix: str, database_url: str, db: Database
) -> None:
    settings = {"DATABASE_URL": database_url, "PROXY_METRICS_FLUSH_SECONDS": 3600}
    # one fixed moment for both runs: the real hour could turn between them
    moment = datetime(2030, 1, 1, 12, 34, 56, tzinfo=UTC)
    async with start_proxy(**settings) as running:
        running.app.state.aggregator.clock = lambda: moment
        await _traffic(running.url, fake, redis, redis_prefix)
        async with db.connection() as conn:
            assert await conn.fetch(ROWS) == []  # no write per request
    async with db.connection() as conn:
        rows = {r["model"]: dict(r) for r in await conn.fetch(ROWS)}
    assert set(rows) == {MODEL, "no-such-model"}
    mine = rows[MODEL]
    assert (mine["requests"], mine["cache_hits"], mine["cache_misses"], mine["errors"]) == (
        3, 1, 2, 0,
    )  # fmt: skip
    assert (mine["prompt_tokens"], mine["completion_tokens"]) == (2 + 3, 5 + 5)
    assert mine["max_latency_ms"] > 0 and mine["total_latency_ms"] >= mine["max_latency_ms"]
    assert mine["bucket_start"] == hour_of(moment) == datetime(2030, 1, 1, 12, tzinfo=UTC)
    missing = rows["no-such-model"]
    assert (missing["requests"], missing["cache_misses"], missing["errors"]) == (1, 1, 1)

    # a second process (or a later flush) adds its deltas to the same hourly row
    async with start_proxy(**settings) as running:
        aggregator: Aggregator = running.app.state.aggregator
        aggregator.clock = lambda: moment + timedelta(minutes=20)  # later in the same hour
        client = ollama.AsyncClient(host=running.url)
        await client.generate(MODEL, "count me", options={"temperature": 0})  # a hit
        assert await aggregator.flush() == 1
        assert await aggregator.flush() == 0
    async with db.connection() as conn:
        row = await conn.fetchrow(ROWS.replace("ORDER BY model", "WHERE model = $1"), MODEL)
    assert row is not None
    assert (row["requests"], row["cache_hits"], row["cache_misses"]) == (4, 2, 2)
    assert row["bucket_start"] == hour_of(moment)


async def test_a_failed_flush_keeps_the_deltas(database_url: str, db: Database) -> None:
    aggregator = Aggregator("postgresql://postgres@127.0.0.1:1/none", interval=3600)
    aggregator.record(MODEL, hit=False, latency_ms=5.0, prompt_tokens=3, completion_tokens=4)
    assert await aggregator.flush() == 0
    assert len(aggregator.pending) == 1
    aggregator.record(MODEL, hit=True, latency_ms=1.0)
    aggregator.database_url = database_url  # the database is back
    assert await aggregator.flush() == 1
    await aggregator.stop()
    async with db.connection() as conn:
        row = await conn.fetchrow(ROWS.replace("ORDER BY model", "WHERE model = $1"), MODEL)
    assert row is not None
    assert (row["requests"], row["cache_hits"], row["prompt_tokens"], row["max_latency_ms"]) == (
        2, 1, 3, 5.0,
    )  # fmt: skip


async def test_readyz_reports_the_database_as_optional(start_proxy, database_url: str) -> None:
    async with start_proxy(DATABASE_URL=database_url) as running, running.client() as http:
        ok = (await http.get("/readyz")).json()
    async with (
        start_proxy(DATABASE_URL="postgresql://postgres@127.0.0.1:1/none") as running,
        running.client() as http,
    ):
        down = await http.get("/readyz")
    assert ok["checks"]["database"]["state"] == "ok"
    assert down.status_code == 200
    assert down.json()["checks"]["database"]["state"] == "unavailable"


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)


async def test_prompts_stay_out_of_logs_unless_asked(
    start_proxy, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "my-very-private-prompt"
    caplog.set_level(logging.DEBUG)
    async with start_proxy() as running:
        await ollama.AsyncClient(host=running.url).generate(MODEL, secret)
        async with running.client() as http:
            await http.post("/api/chat", content=b'{"model": "x", "messages": [' + secret.encode())
    assert "generate 200 ok" in _logged(caplog)
    assert secret not in _logged(caplog)

    caplog.clear()
    async with start_proxy(LOG_PROMPTS=True) as running:
        await ollama.AsyncClient(host=running.url).generate(MODEL, secret)
    assert secret in _logged(caplog)
