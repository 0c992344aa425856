"""Streaming order, the upstream bound, and an upstream that is down, slow or failing."""

from __future__ import annotations

import asyncio
import json

import httpx
import ollama
import pytest
from cesar_ollama_proxy.testing import FakeOllama, free_port, wait_until

MODEL = "llama3.2:1b"


async def test_first_chunk_reaches_the_client_before_the_upstream_finishes(
    proxy, fake: FakeOllama
) -> None:
    fake.config.hold_after_chunks = 2  # the fake sends two chunks, then waits for release()
    async with (
        asyncio.timeout(30),
        proxy.client() as http,
        http.stream("POST", "/api/generate", json={"model": MODEL, "prompt": "order"}) as resp,
    ):
        lines = resp.aiter_lines()
        first = json.loads(await anext(lines))
        # the client holds a chunk while the upstream is still mid-answer
        assert first["done"] is False
        assert fake.holding == 1 and fake.streams_finished == 0
        fake.release()
        rest = [json.loads(line) async for line in lines if line]
    assert rest[-1]["done"] is True and len(rest) == 5
    assert fake.streams_finished == 1


async def test_openai_sse_is_streamed_too(proxy, fake: FakeOllama) -> None:
    fake.config.hold_after_chunks = 1
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}
    async with (
        asyncio.timeout(30),
        proxy.client() as http,
        http.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        lines = resp.aiter_lines()
        assert (await anext(lines)).startswith("data: {")
        assert fake.holding == 1
        fake.release()
        rest = [line async for line in lines if line]
    assert rest[-1] == "data: [DONE]"


async def test_concurrent_upstream_requests_are_bounded_and_the_rest_queue(
    start_proxy, fake: FakeOllama
) -> None:
    fake.config.hold_after_chunks = 1
    async with start_proxy(PROXY_MAX_CONCURRENT_UPSTREAM=1) as running, running.client() as http:
        upstream = running.app.state.proxy.upstream
        async with asyncio.timeout(30):
            async with http.stream(
                "POST", "/api/generate", json={"model": MODEL, "prompt": "a"}
            ) as first:
                first_lines = first.aiter_lines()  # keep it: a dropped iterator closes the stream
                await anext(first_lines)
                second = asyncio.create_task(
                    http.post("/api/generate", json={"model": MODEL, "prompt": "b"})
                )
                await wait_until(lambda: upstream.queued == 1, "the second request to queue")
                # the queued request has not reached Ollama; tags are not bounded
                assert fake.requests["/api/generate"] == 1
                assert (await http.get("/api/tags")).status_code == 200
                metrics = (await http.get("/metrics")).text
                assert "ollama_proxy_upstream_queued 1.0" in metrics
                assert "ollama_proxy_upstream_in_flight 1.0" in metrics
                fake.release()
                _ = [line async for line in first_lines]
            answer = await second
    assert answer.status_code == 200 and fake.requests["/api/generate"] == 2
    assert upstream.in_flight == 0 and upstream.queued == 0


async def test_queue_timeout_is_a_503_with_retry_after(start_proxy, fake: FakeOllama) -> None:
    fake.config.hold_after_chunks = 1
    async with (
        start_proxy(PROXY_MAX_CONCURRENT_UPSTREAM=1, PROXY_QUEUE_TIMEOUT_SECONDS=0.05) as running,
        running.client() as http,
        http.stream("POST", "/api/generate", json={"model": MODEL, "prompt": "a"}) as first,
    ):
        first_lines = first.aiter_lines()
        await anext(first_lines)
        busy = await http.post("/api/generate", json={"model": MODEL, "prompt": "b"})
        fake.release()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "upstream slots stayed busy" in busy.json()["error"]


async def test_unreachable_upstream_is_502_in_ollama_shape(start_proxy) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with start_proxy(OLLAMA_URL=closed) as running:
        client = ollama.AsyncClient(host=running.url)
        with pytest.raises(ollama.ResponseError) as raised:
            await client.generate(MODEL, "hi")
        assert raised.value.status_code == 502
        assert raised.value.error.startswith(f"cannot reach Ollama at {closed}")
        async with running.client() as http:
            v1 = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": []})
            assert v1.status_code == 502 and v1.json()["error"]["type"] == "api_error"
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["upstream"]["ok"] is False
            assert ready.json()["checks"]["redis"]["ok"] is True
            metrics = (await http.get("/metrics")).text
    assert 'ollama_proxy_upstream_errors_total{kind="unreachable",route="generate"} 1.0' in metrics


async def test_slow_upstream_is_504(start_proxy, fake: FakeOllama) -> None:
    fake.config.response_delay = 1.0
    async with start_proxy(PROXY_UPSTREAM_READ_TIMEOUT=0.1) as running, running.client() as http:
        resp = await http.post("/api/generate", json={"model": MODEL, "prompt": "slow"})
    assert resp.status_code == 504
    assert resp.json() == {"error": "Ollama did not answer in time"}


async def test_upstream_error_line_mid_stream_is_relayed_as_the_last_line(
    proxy, fake: FakeOllama, redis, redis_prefix: str
) -> None:
    fake.config.error_after_chunks = 2
    client = ollama.AsyncClient(host=proxy.url)
    seen: list[str] = []
    with pytest.raises(ollama.ResponseError) as raised:
        stream = await client.generate(MODEL, "e", stream=True, options={"temperature": 0})
        async for part in stream:
            seen.append(part.response)
    assert raised.value.error == "fake upstream failure" and len(seen) == 2
    # a failed stream is never cached: the same request goes upstream again
    async with proxy.client() as http:
        again = await http.post(
            "/api/generate",
            json={"model": MODEL, "prompt": "e", "options": {"temperature": 0}},
        )
        lines = again.text.splitlines()
    assert again.headers["x-cache"] == "MISS" and json.loads(lines[-1]) == {
        "error": "fake upstream failure"
    }
    assert fake.requests["/api/generate"] == 2
    assert [k async for k in redis.scan_iter(match=f"{redis_prefix}cache:*")] == []


async def test_connection_lost_mid_stream_ends_with_an_error_line(proxy, fake: FakeOllama) -> None:
    fake.config.drop_after_chunks = 3
    async with proxy.client() as http:
        async with http.stream(
            "POST",
            "/api/chat",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        ) as resp:
            assert resp.status_code == 200
            lines = [json.loads(line) async for line in resp.aiter_lines() if line]
        metrics = (await http.get("/metrics")).text
    assert [line.get("done") for line in lines[:3]] == [False] * 3
    assert lines[-1]["error"].startswith("lost the connection to Ollama mid-answer")
    assert 'ollama_proxy_upstream_errors_total{kind="stream",route="chat"} 1.0' in metrics
    assert 'outcome="upstream_error",route="chat"} 1.0' in metrics


async def test_upstream_stalling_mid_stream_ends_with_a_timeout_line(
    start_proxy, fake: FakeOllama
) -> None:
    fake.config.hold_after_chunks = 2
    async with start_proxy(PROXY_UPSTREAM_READ_TIMEOUT=0.2) as running, running.client() as http:
        resp = await http.post("/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True
        })  # fmt: skip
        fake.release()
    events = [e for e in resp.text.split("\n\n") if e]
    assert len(events) == 3
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["error"]["message"] == "Ollama stopped sending (read timeout)"


async def test_a_client_that_leaves_mid_stream_frees_the_upstream_slot(
    start_proxy, fake: FakeOllama
) -> None:
    fake.config.hold_after_chunks = 1
    async with start_proxy(PROXY_MAX_CONCURRENT_UPSTREAM=1) as running:
        upstream = running.app.state.proxy.upstream
        async with (
            running.client() as http,
            http.stream("POST", "/api/generate", json={"model": MODEL, "prompt": "bye"}) as resp,
        ):
            lines = resp.aiter_lines()
            await anext(lines)
            assert upstream.in_flight == 1
        # the client closed its connection while the upstream was mid-answer: the proxy frees
        # the slot and hangs up on Ollama too, which stops generating
        await wait_until(lambda: upstream.in_flight == 0, "the slot to be released")
        await wait_until(lambda: fake.holding == 0, "the upstream to notice")
        assert fake.streams_finished == 0
        fake.config.hold_after_chunks = None
        async with running.client() as http:
            metrics = (await http.get("/metrics")).text
            assert (await http.post("/api/generate", json={"model": MODEL})).status_code == 200
    assert 'outcome="cancelled",route="generate"} 1.0' in metrics


async def test_readyz_reports_redis_down(start_proxy) -> None:
    async with (
        start_proxy(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0") as running,
        httpx.AsyncClient(base_url=running.url) as http,
    ):
        ready = await http.get("/readyz")
        # Redis down: not ready, but model requests are still served (cache and limits open)
        served = await http.post(
            "/api/generate",
            json={"model": MODEL, "prompt": "x", "stream": False, "options": {"temperature": 0}},
        )
        metrics = (await http.get("/metrics")).text
    assert ready.status_code == 503
    body = ready.json()
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["upstream"]["ok"] is True
    assert body["checks"]["database"]["state"] == "disabled"
    assert served.status_code == 200
    assert 'ollama_proxy_redis_errors_total{op="ratelimit"}' in metrics
    assert 'ollama_proxy_redis_errors_total{op="cache_get"}' in metrics
