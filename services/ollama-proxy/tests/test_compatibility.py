"""Every Ollama route through the proxy, driven with the official ``ollama`` client where it
has a call for it, and with httpx for the rest (``/``, ``/v1/*``, raw NDJSON)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import ollama
import pytest
from cesar_ollama_proxy.testing import FakeOllama, serve_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MODEL = "llama3.2:1b"
EMBED_MODEL = "nomic-embed-text"


async def test_list_show_ps_and_version(proxy, fake: FakeOllama) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    listed = await client.list()
    assert [m.model for m in listed.models] == [
        "llama3.2:1b",
        "qwen2.5:0.5b",
        "nomic-embed-text:latest",
    ]
    shown = await client.show(MODEL)
    assert shown.modelfile == "FROM llama3.2:1b"
    assert shown.details is not None and shown.details.family == "llama"
    running = await client.ps()
    assert len(running.models) == 3
    async with proxy.client() as http:
        assert (await http.get("/api/version")).json() == {"version": "0.9.0-fake"}
        root = await http.get("/")
        assert (root.status_code, root.text) == (200, "Ollama is running")
        assert (await http.head("/")).status_code == 200
    assert fake.requests["/api/tags"] == 1 and fake.requests["/api/show"] == 1


async def test_generate_and_chat_streamed_and_not(proxy) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    answer = await client.generate(MODEL, "why is the sky blue")
    assert answer.done and answer.response.strip() and answer.eval_count == 5

    parts = [p async for p in await client.generate(MODEL, "why is the sky blue", stream=True)]
    assert len(parts) == 6 and parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.response for p in parts) == answer.response

    messages = [{"role": "user", "content": "hello there"}]
    reply = await client.chat(MODEL, messages)
    assert reply.message.role == "assistant" and reply.message.content
    chunks = [c async for c in await client.chat(MODEL, messages, stream=True)]
    assert chunks[-1].done and chunks[-1].prompt_eval_count == 2
    assert "".join(c.message.content or "" for c in chunks) == reply.message.content


async def test_embed_embeddings_and_pull(proxy, fake: FakeOllama) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    embedded = await client.embed(EMBED_MODEL, ["one", "two"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 8
    legacy = await client.embeddings(EMBED_MODEL, "one")
    assert list(legacy.embedding) == list(embedded.embeddings[0])
    progress = [p async for p in await client.pull("qwen2.5:0.5b", stream=True)]
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    assert any(p.completed == 300 for p in progress)
    assert "qwen2.5:0.5b" in [m.model for m in (await client.list()).models]


async def test_errors_keep_ollama_shape_and_status_for_the_client(proxy, fake) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    with pytest.raises(ollama.ResponseError) as raised:
        await client.generate("no-such-model", "hi")
    assert raised.value.status_code == 404
    assert raised.value.error == 'model "no-such-model" not found, try pulling it first'
    with pytest.raises(ollama.ResponseError) as raised:
        stream = await client.chat("no-such-model", [{"role": "user", "content": "x"}], stream=True)
        [part async for part in stream]
    assert raised.value.status_code == 404

    fake.config.fail_status = 500
    with pytest.raises(ollama.ResponseError) as raised:
        await client.generate(MODEL, "hi")
    assert (raised.value.status_code, raised.value.error) == (500, "fake upstream failure")


async def test_the_synchronous_client_works_too(proxy) -> None:
    def use() -> tuple[str, int]:
        client = ollama.Client(host=proxy.url)
        text = client.generate(MODEL, "sync").response
        streamed = list(client.chat(MODEL, [{"role": "user", "content": "x"}], stream=True))
        return text, len(streamed)

    text, count = await asyncio.to_thread(use)
    assert text and count == 6


async def test_ndjson_lines_pass_through_unchanged(proxy, fake) -> None:
    async with (
        proxy.client() as http,
        http.stream("POST", "/api/generate", json={"model": MODEL, "prompt": "raw lines"}) as resp,
    ):
        assert resp.headers["content-type"] == "application/x-ndjson"
        assert resp.headers["x-cache"] == "SKIP"
        lines = [json.loads(line) async for line in resp.aiter_lines() if line]
    assert [line["done"] for line in lines] == [False] * 5 + [True]
    assert set(lines[-1]) >= {"prompt_eval_count", "eval_count", "done_reason", "context"}


async def test_openai_routes_pass_through_with_sse_kept(proxy) -> None:
    async with proxy.client() as http:
        models = (await http.get("/v1/models")).json()
        assert [m["id"] for m in models["data"]] == [
            "llama3.2:1b",
            "qwen2.5:0.5b",
            "nomic-embed-text:latest",
        ]

        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        plain = (await http.post("/v1/chat/completions", json=body)).json()
        assert plain["object"] == "chat.completion" and plain["usage"]["completion_tokens"] == 5

        streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async with http.stream("POST", "/v1/chat/completions", json=streamed) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            raw = b"".join([chunk async for chunk in resp.aiter_raw()])
        events = [e for e in raw.split(b"\n\n") if e]
        assert all(e.startswith(b"data: ") for e in events)
        assert events[-1] == b"data: [DONE]"
        content = "".join(
            json.loads(e[6:])["choices"][0]["delta"]["content"]
            for e in events[:-1]
            if json.loads(e[6:])["choices"]
        )
        assert content == plain["choices"][0]["message"]["content"]

        completion = await http.post("/v1/completions", json={"model": MODEL, "prompt": "x"})
        assert completion.json()["choices"][0]["text"]
        vectors = await http.post("/v1/embeddings", json={"model": EMBED_MODEL, "input": ["a"]})
        assert len(vectors.json()["data"][0]["embedding"]) == 8

        missing = await http.post("/v1/chat/completions", json={**body, "model": "nope"})
        assert missing.status_code == 404
        assert missing.json()["error"]["message"].startswith('model "nope" not found')


async def test_bad_requests_get_clear_4xx_in_ollama_shape(start_proxy) -> None:
    async with start_proxy(PROXY_MAX_BODY_BYTES=1024) as running, running.client() as http:
        bad = await http.post("/api/generate", content=b"{not json")
        assert bad.status_code == 400
        assert bad.json()["error"].startswith("the request body is not valid JSON")
        array = await http.post("/api/chat", json=[1, 2])
        assert (array.status_code, array.json()) == (
            400,
            {"error": "the request body must be a JSON object"},
        )
        large = await http.post("/api/generate", json={"model": MODEL, "prompt": "x" * 2000})
        assert large.status_code == 413 and "larger than 1024 bytes" in large.json()["error"]
        unknown = await http.get("/nothing-here")
        assert unknown.status_code == 404 and "not an Ollama route" in unknown.json()["error"]
        v1_bad = await http.post("/v1/chat/completions", content=b"[")
        assert v1_bad.status_code == 400
        assert v1_bad.json()["error"]["type"] == "invalid_request_error"


async def test_query_strings_and_unknown_api_routes_pass_through(start_proxy) -> None:
    """An upstream that records what reaches it and answers with a status the proxy never
    produces itself, so the answer seen is the upstream's."""
    seen: list[tuple[str, str, str, bytes]] = []

    async def record(request: Request) -> Response:
        body = await request.body()
        seen.append((request.method, request.url.path, request.url.query, body))
        return JSONResponse({"relayed": request.url.path}, status_code=299)

    methods = ["GET", "POST", "DELETE"]
    upstream = Starlette(routes=[Route("/{path:path}", record, methods=methods)])
    async with (
        serve_app(upstream) as upstream_url,
        start_proxy(OLLAMA_URL=upstream_url) as running,
        running.client() as http,
    ):
        deleted = await http.request(
            "DELETE", "/api/delete", params={"x": "1", "y": "a b"}, json={"model": MODEL}
        )
        tags = await http.get("/api/tags", params={"verbose": "true"})
        models = await http.get("/v1/models", params={"page": "2"})
    assert (deleted.status_code, deleted.json()) == (299, {"relayed": "/api/delete"})
    assert (tags.status_code, models.status_code) == (299, 299)
    assert [(m, p, q) for m, p, q, _ in seen] == [
        ("DELETE", "/api/delete", "x=1&y=a+b"),
        ("GET", "/api/tags", "verbose=true"),
        ("GET", "/v1/models", "page=2"),
    ]
    assert json.loads(seen[0][3]) == {"model": MODEL}


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
async def test_health_endpoints(proxy, path: str) -> None:
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        resp = await http.get(path)
    assert resp.status_code == 200


def _documented_default_models() -> list[str]:
    """``OLLAMA_MODELS`` as ``.env.example`` (what `make up` copies) sets it."""
    env_example = Path(__file__).resolve().parents[3] / ".env.example"
    for line in env_example.read_text().splitlines():
        if line.startswith("OLLAMA_MODELS="):
            return [m.strip() for m in line.split("=", 1)[1].split(",") if m.strip()]
    raise AssertionError(".env.example sets no OLLAMA_MODELS")


async def test_the_documented_default_model_answers_on_the_default_fake(
    proxy, fake: FakeOllama
) -> None:
    documented = _documented_default_models()
    assert "qwen2.5:0.5b" in documented  # the model every README example uses
    client = ollama.AsyncClient(host=proxy.url)
    listed = {m.model for m in (await client.list()).models}
    for model in documented:
        assert model in listed, (model, listed)
        answer = await client.generate(model=model, prompt="hi", options={"temperature": 0})
        assert answer.response, model
