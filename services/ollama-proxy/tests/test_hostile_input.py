"""Hostile clients: odd model names, fresh bearer tokens, large and malformed bodies, and
values the database refuses. Each answer is a 4xx in Ollama's shape, never a 500, and nothing
a client sends reaches logs, Redis keys, metrics or ``llm_cache_metrics`` unchecked."""

from __future__ import annotations

import secrets
import socket

import pytest
from cesar_core.db import Database
from cesar_ollama_proxy.aggregates import Aggregator
from cesar_ollama_proxy.testing import FakeOllama

MODEL = "llama3.2:1b"

BAD_MODELS = {
    "huge": "m" * 100_000,
    "nul_byte": "llama3.2:1b\x00",
    "newline": "llama3.2:1b\nINFO forged log line",
    "space": "llama 3",
    "not_a_string": 42,
}


@pytest.mark.parametrize("name", sorted(BAD_MODELS))
async def test_bad_model_names_are_400_before_anything_uses_them(
    start_proxy, fake: FakeOllama, redis, redis_prefix: str, name: str
) -> None:
    model = BAD_MODELS[name]
    async with start_proxy() as running, running.client() as http:
        body = {"model": model, "prompt": "x", "stream": False, "options": {"temperature": 0}}
        answer = await http.post("/api/generate", json=body)
        v1 = await http.post("/v1/chat/completions", json={"model": model, "messages": []})
        metrics = (await http.get("/metrics")).text
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == {"error"} and "model" in answer.json()["error"]
    assert v1.status_code == 400 and "model" in v1.json()["error"]["message"]  # OpenAI shape
    assert fake.requests["/api/generate"] == 0 and fake.requests["/v1/chat/completions"] == 0
    keys = [key async for key in redis.scan_iter(match=f"{redis_prefix}*")]
    assert not [key for key in keys if b":model:" in key]  # no model limit key was made
    if isinstance(model, str):
        assert model[:40] not in metrics and model[:40] not in answer.text


async def test_real_model_names_pass(start_proxy, fake: FakeOllama) -> None:
    names = [
        MODEL,
        "nomic-embed-text",
        "library/llama3.2:latest",
        "registry.ollama.ai/library/llama3.2:1b",
        "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        "localhost:5000/team/my_model:v1.2",
    ]
    fake.config.models = [*fake.config.models, *names]
    async with start_proxy() as running, running.client() as http:
        for name in names:
            answer = await http.post(
                "/api/generate", json={"model": name, "prompt": "x", "stream": False}
            )
            assert answer.status_code == 200, (name, answer.text)


async def test_fresh_bearer_tokens_do_not_escape_the_address_limit(start_proxy) -> None:
    async with start_proxy(
        PROXY_RATE_LIMIT_CLIENT="1000/hour", PROXY_RATE_LIMIT_ADDRESS="3/hour"
    ) as running:
        statuses = []
        for _ in range(10):
            token = {"Authorization": f"Bearer {secrets.token_hex(8)}"}
            async with running.client(headers=token) as http:
                answer = await http.get("/api/tags")
                statuses.append(answer.status_code)
                if answer.status_code == 429:
                    refusal = answer
        async with running.client() as http:
            metrics = (await http.get("/metrics")).text
    assert statuses == [200] * 3 + [429] * 7
    assert refusal.json()["error"].startswith("rate limit exceeded for this address")
    assert "retry-after" in refusal.headers
    assert 'ollama_proxy_rate_limited_total{scope="address"} 7.0' in metrics


async def test_default_body_limit_is_a_few_mib(start_proxy, fake: FakeOllama) -> None:
    async with start_proxy() as running, running.client() as http:
        assert running.settings.max_body_bytes == 4 * 1024 * 1024
        big = {"model": MODEL, "prompt": "x" * (5 * 1024 * 1024), "stream": False}
        answer = await http.post("/api/generate", json=big)
    assert answer.status_code == 413 and "larger than 4194304 bytes" in answer.json()["error"]
    assert fake.requests["/api/generate"] == 0


async def test_the_limit_comes_before_the_body_is_read(start_proxy, fake: FakeOllama) -> None:
    async with (
        start_proxy(PROXY_RATE_LIMIT_CLIENT="1/hour", PROXY_MAX_BODY_BYTES=1024) as running,
        running.client(headers={"Authorization": "Bearer one"}) as http,
    ):
        first = await http.post("/api/generate", json={"model": MODEL, "stream": False})
        not_json = await http.post("/api/generate", content=b"{not json")
        too_big = await http.post("/api/generate", content=b"x" * 4096)
    assert first.status_code == 200
    assert not_json.status_code == 429 and too_big.status_code == 429


@pytest.mark.parametrize(
    "body",
    [
        # a lone surrogate escape: valid JSON syntax, not a character
        rb'{"model": "llama3.2:1b", "prompt": "\ud800", "stream": false,'
        rb' "options": {"temperature": 0}}',
        rb'{"model": "llama3.2:1b", "prompt": "x", "stream": false, "\udfff": 1}',
        rb'{"model": "llama3.2:1b", "prompt": "\ud800"}',
        # nested deeper than the parser's recursion limit
        b'{"model": "llama3.2:1b", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"model": "llama3.2:1b", "prompt": "\xff"}',  # not UTF-8
    ],
    ids=["surrogate_cached", "surrogate_key", "surrogate_uncached", "deep", "not_utf8"],
)
async def test_malformed_json_is_400_not_500(start_proxy, fake: FakeOllama, body: bytes) -> None:
    async with start_proxy() as running, running.client() as http:
        answer = await http.post("/api/generate", content=body)
        paired = await http.post(  # a surrogate pair is a character: fine
            "/api/generate",
            content=rb'{"model": "llama3.2:1b", "prompt": "\ud83d\ude00", "stream": false}',
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("the request body is not valid JSON")
    assert paired.status_code == 200


@pytest.mark.parametrize("bad", ["llama\x00", "llama\ud800"], ids=["nul_byte", "surrogate"])
async def test_a_bucket_the_database_refuses_is_dropped_alone(
    database_url: str, db: Database, bad: str
) -> None:
    results: list[str] = []
    aggregator = Aggregator(database_url, interval=3600, on_flush=results.append)
    aggregator.record(MODEL, hit=False, latency_ms=5.0)
    aggregator.record(bad, hit=False, latency_ms=5.0)
    aggregator.record("zz-other", hit=True, latency_ms=1.0)
    assert await aggregator.flush() == 2
    assert aggregator.pending == {}
    aggregator.record(MODEL, hit=True, latency_ms=1.0)
    assert await aggregator.flush() == 1  # later flushes are not stuck behind the bad one
    await aggregator.stop()
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT model, requests FROM llm_cache_metrics ORDER BY model")
    assert [(r["model"], r["requests"]) for r in rows] == [(MODEL, 2), ("zz-other", 1)]
    assert results == ["dropped", "ok", "ok"]


async def test_an_unreachable_upstream_is_named_by_host_only(start_proxy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret = "fake-" + "pw-7781"
    async with (
        start_proxy(OLLAMA_URL=f"http://user:{secret}@127.0.0.1:{port}") as running,
        running.client() as http,
    ):
        answer = await http.get("/api/tags")
        ready = await http.get("/readyz")
    assert answer.status_code == 502 and f"127.0.0.1:{port}" in answer.json()["error"]
    assert secret not in answer.text and secret not in ready.text
