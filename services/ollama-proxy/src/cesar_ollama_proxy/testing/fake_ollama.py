"""A small real HTTP server speaking Ollama's API, for tests and benchmarks.

Routes: ``GET|HEAD /``, ``GET /api/version``, ``GET /api/tags``, ``POST /api/show``,
``GET /api/ps``, ``POST /api/generate``, ``POST /api/chat`` (NDJSON streaming, the default, or
one JSON object with ``"stream": false``), ``POST /api/embed``, ``POST /api/embeddings``,
``POST /api/pull`` (streamed progress), ``GET /v1/models``, ``POST /v1/chat/completions``,
``POST /v1/completions`` (SSE with ``"stream": true``), ``POST /v1/embeddings``.
An unknown model gets 404 ``{"error": "model \\"x\\" not found, try pulling it first"}``.

Answers are deterministic in content (derived from the prompt) but carry the current
``created_at``, so a byte-identical second answer proves it came from a cache.

Behaviour is set by :class:`FakeConfig` (constructor, ``POST /_fake/config`` with a partial
JSON object, or the command line) and observed through :class:`FakeOllama`'s counters or
``GET /_fake/state``:

- ``response_delay``: seconds before the answer starts (a slow upstream);
- ``chunk_delay``: seconds between streamed chunks;
- ``tokens``: content chunks per answer;
- ``fail_status`` / ``fail_message``: model routes answer this status with Ollama's error;
- ``error_after_chunks``: after N chunks a stream ends with ``{"error": ...}`` (SSE: ``data:``);
- ``drop_after_chunks``: after N chunks the connection is cut (no terminating chunk);
- ``hold_after_chunks``: after N chunks a stream waits until released
  (:meth:`FakeOllama.release` or ``POST /_fake/release``);
- ``canned_responses``: ``{marker: text}``; a generate or chat prompt containing ``marker``
  is answered with ``text`` verbatim (one chunk when streamed), e.g. the JSON a step expects.

Control routes: ``GET /_fake/state``, ``POST /_fake/config``, ``POST /_fake/release``,
``POST /_fake/reset``.

Run alone: ``python -m cesar_ollama_proxy.testing.fake_ollama --port 11434``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from cesar_ollama_proxy.testing.server import serve_app

__all__ = ["DEFAULT_MODELS", "FakeConfig", "FakeOllama", "create_fake_app", "main"]

# qwen2.5:0.5b is the model the README and .env.example use (OLLAMA_MODELS)
DEFAULT_MODELS = ("llama3.2:1b", "qwen2.5:0.5b", "nomic-embed-text:latest")
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


@dataclass
class FakeConfig:
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    version: str = "0.9.0-fake"
    tokens: int = 5
    response_delay: float = 0.0
    chunk_delay: float = 0.0
    fail_status: int | None = None
    fail_message: str = "fake upstream failure"
    error_after_chunks: int | None = None
    drop_after_chunks: int | None = None
    hold_after_chunks: int | None = None
    embedding_dim: int = 8
    canned_responses: dict[str, str] = field(default_factory=dict)

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fake settings: {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(self, name, value)


class _Dropped(Exception):
    """Raised inside a streaming answer to make uvicorn cut the connection."""


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _normalize(model: str) -> str:
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def _words(text: str, count: int) -> list[str]:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return [_WORDS[(seed + i * 7) % len(_WORDS)] + " " for i in range(count)]


def _vector(text: str, dim: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dim)]


def _answer(config: FakeConfig, prompt: str) -> list[str]:
    for marker, text in config.canned_responses.items():
        if marker in prompt:
            return [text]
    return _words(prompt, config.tokens)


def _prompt_tokens(text: str) -> int:
    return max(1, len(text.split()))


class FakeOllama:
    """The fake server's state; :attr:`app` is its ASGI app."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self._initial = config or FakeConfig()
        self.config = dataclasses.replace(
            self._initial,
            models=list(self._initial.models),
            canned_responses=dict(self._initial.canned_responses),
        )
        self.requests: Counter[str] = Counter()
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.streams_started = 0
        self.streams_finished = 0
        self.holding = 0
        self._gate = asyncio.Event()
        #: the base URL while :meth:`serve` runs
        self.url = ""
        self.app = create_fake_app(self)

    # -- control --------------------------------------------------------------------------

    def release(self) -> None:
        """Let held streams continue."""
        self._gate.set()

    def reset(self) -> None:
        self.config = dataclasses.replace(
            self._initial,
            models=list(self._initial.models),
            canned_responses=dict(self._initial.canned_responses),
        )
        self.requests.clear()
        self.bodies.clear()
        self.streams_started = self.streams_finished = self.holding = 0
        self._gate = asyncio.Event()

    def state(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "streams_started": self.streams_started,
            "streams_finished": self.streams_finished,
            "holding": self.holding,
            "config": dataclasses.asdict(self.config),
        }

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1") -> AsyncIterator[str]:
        """Serve in the current event loop; yields the base URL."""
        async with serve_app(self.app, host=host) as url:
            self.url = url
            yield url

    # -- helpers --------------------------------------------------------------------------

    def known(self, model: str) -> bool:
        return _normalize(model) in {_normalize(m) for m in self.config.models}

    async def stream(
        self, chunks: list[bytes], error: Callable[[str], bytes]
    ) -> AsyncIterator[bytes]:
        cfg = self.config
        self.streams_started += 1
        for index, chunk in enumerate(chunks):
            if index:
                if cfg.hold_after_chunks is not None and index == cfg.hold_after_chunks:
                    self.holding += 1
                    try:
                        await self._gate.wait()
                    finally:
                        self.holding -= 1
                if cfg.error_after_chunks is not None and index == cfg.error_after_chunks:
                    yield error(cfg.fail_message)
                    self.streams_finished += 1
                    return
                if cfg.drop_after_chunks is not None and index == cfg.drop_after_chunks:
                    raise _Dropped("fake upstream cut the connection")
                if cfg.chunk_delay:
                    await asyncio.sleep(cfg.chunk_delay)
            yield chunk
        self.streams_finished += 1


def _ndjson(objects: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(o).encode() + b"\n" for o in objects]


def _sse(objects: list[dict[str, Any] | str]) -> list[bytes]:
    return [
        b"data: " + (o.encode() if isinstance(o, str) else json.dumps(o).encode()) + b"\n\n"
        for o in objects
    ]


def _ndjson_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode() + b"\n"


def _sse_error(message: str) -> bytes:
    return (
        b"data: "
        + json.dumps({"error": {"message": message, "type": "api_error"}}).encode()
        + (b"\n\n")
    )


def _timings(prompt_tokens: int, eval_tokens: int) -> dict[str, Any]:
    return {
        "total_duration": 1_000_000 * (eval_tokens + 1),
        "load_duration": 100_000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 200_000,
        "eval_count": eval_tokens,
        "eval_duration": 700_000 * eval_tokens,
    }


def create_fake_app(fake: FakeOllama) -> Starlette:
    def openai_error(message: str, status: int) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "api_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return JSONResponse(body, status_code=status)

    async def model_request(
        request: Request, *, openai: bool = False
    ) -> tuple[dict[str, Any], Response | None]:
        fake.requests[request.url.path] += 1
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            message = "invalid request body"
            return {}, openai_error(message, 400) if openai else JSONResponse(
                {"error": message}, status_code=400
            )
        fake.bodies.append((request.url.path, body))
        cfg = fake.config
        if cfg.response_delay:
            await asyncio.sleep(cfg.response_delay)
        if cfg.fail_status is not None:
            if openai:
                return body, openai_error(cfg.fail_message, cfg.fail_status)
            return body, JSONResponse({"error": cfg.fail_message}, status_code=cfg.fail_status)
        model = str(body.get("model") or "")
        if not model:
            message = "model is required"
            return body, openai_error(message, 400) if openai else JSONResponse(
                {"error": message}, status_code=400
            )
        if not fake.known(model):
            message = f'model "{model}" not found, try pulling it first'
            return body, openai_error(message, 404) if openai else JSONResponse(
                {"error": message}, status_code=404
            )
        return body, None

    def ndjson_response(chunks: list[bytes]) -> StreamingResponse:
        return StreamingResponse(
            fake.stream(chunks, _ndjson_error), media_type="application/x-ndjson"
        )

    def sse_response(chunks: list[bytes]) -> StreamingResponse:
        return StreamingResponse(fake.stream(chunks, _sse_error), media_type="text/event-stream")

    async def root(request: Request) -> Response:
        fake.requests["/"] += 1
        return PlainTextResponse("Ollama is running")

    async def version(request: Request) -> Response:
        fake.requests[request.url.path] += 1
        return JSONResponse({"version": fake.config.version})

    def model_entry(name: str) -> dict[str, Any]:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return {
            "name": _normalize(name),
            "model": _normalize(name),
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 1_000_000,
            "digest": digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "1B",
                "quantization_level": "Q4_K_M",
            },
        }

    async def tags(request: Request) -> Response:
        fake.requests[request.url.path] += 1
        return JSONResponse({"models": [model_entry(m) for m in fake.config.models]})

    async def ps(request: Request) -> Response:
        fake.requests[request.url.path] += 1
        models = [
            {**model_entry(m), "expires_at": "2099-01-01T00:00:00Z", "size_vram": 0}
            for m in fake.config.models
        ]
        return JSONResponse({"models": models})

    async def show(request: Request) -> Response:
        body, failed = await model_request(request)
        if failed is not None:
            return failed
        entry = model_entry(str(body["model"]))
        return JSONResponse(
            {
                "license": "fake",
                "modelfile": f"FROM {entry['name']}",
                "parameters": "temperature 0.8",
                "template": "{{ .Prompt }}",
                "details": entry["details"],
                "model_info": {"general.architecture": "llama", "llama.context_length": 2048},
                "capabilities": ["completion"],
                "modified_at": entry["modified_at"],
            }
        )

    async def generate(request: Request) -> Response:
        body, failed = await model_request(request)
        if failed is not None:
            return failed
        model, prompt = str(body["model"]), str(body.get("prompt") or "")
        words = _answer(fake.config, prompt)
        final = {
            "model": model,
            "created_at": _now(),
            "response": "",
            "done": True,
            "done_reason": "stop",
            "context": [1, 2, 3],
            **_timings(_prompt_tokens(prompt), len(words)),
        }
        if body.get("stream", True) is False:
            return JSONResponse({**final, "response": "".join(words)})
        parts: list[dict[str, Any]] = [
            {"model": model, "created_at": _now(), "response": w, "done": False} for w in words
        ]
        return ndjson_response(_ndjson([*parts, final]))

    async def chat(request: Request) -> Response:
        body, failed = await model_request(request)
        if failed is not None:
            return failed
        model = str(body["model"])
        messages = body.get("messages") or []
        last = str(messages[-1].get("content", "")) if messages else ""
        words = _answer(fake.config, last)
        final = {
            "model": model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            **_timings(_prompt_tokens(last), len(words)),
        }
        if body.get("stream", True) is False:
            return JSONResponse(
                {**final, "message": {"role": "assistant", "content": "".join(words)}}
            )
        parts: list[dict[str, Any]] = [
            {
                "model": model,
                "created_at": _now(),
                "message": {"role": "assistant", "content": w},
                "done": False,
            }
            for w in words
        ]
        return ndjson_response(_ndjson([*parts, final]))

    async def embed(request: Request) -> Response:
        body, failed = await model_request(request)
        if failed is not None:
            return failed
        raw = body.get("input", "")
        inputs = [str(x) for x in raw] if isinstance(raw, list) else [str(raw)]
        dim = fake.config.embedding_dim
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [_vector(text, dim) for text in inputs],
                "total_duration": 1_000_000,
                "load_duration": 100_000,
                "prompt_eval_count": sum(_prompt_tokens(t) for t in inputs),
            }
        )

    async def embeddings(request: Request) -> Response:
        body, failed = await model_request(request)
        if failed is not None:
            return failed
        return JSONResponse(
            {"embedding": _vector(str(body.get("prompt", "")), fake.config.embedding_dim)}
        )

    async def pull(request: Request) -> Response:
        fake.requests[request.url.path] += 1
        body = await request.json()
        model = _normalize(str(body.get("model") or body.get("name") or ""))
        if model not in fake.config.models:
            fake.config.models.append(model)
        digest = "sha256:" + hashlib.sha256(model.encode()).hexdigest()
        steps: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        steps += [
            {"status": f"pulling {digest[7:19]}", "digest": digest, "total": 300, "completed": c}
            for c in (100, 200, 300)
        ]
        steps += [
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ]
        if body.get("stream", True) is False:
            return JSONResponse({"status": "success"})
        return ndjson_response(_ndjson(steps))

    async def v1_models(request: Request) -> Response:
        fake.requests[request.url.path] += 1
        data = [
            {"id": _normalize(m), "object": "model", "created": 1735689600, "owned_by": "library"}
            for m in fake.config.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def v1_completion(request: Request) -> Response:
        chat_route = request.url.path.endswith("/chat/completions")
        body, failed = await model_request(request, openai=True)
        if failed is not None:
            return failed
        model = str(body["model"])
        if chat_route:
            messages = body.get("messages") or []
            text = str(messages[-1].get("content", "")) if messages else ""
        else:
            text = str(body.get("prompt") or "")
        words = _words(text, fake.config.tokens)
        usage = {
            "prompt_tokens": _prompt_tokens(text),
            "completion_tokens": len(words),
            "total_tokens": _prompt_tokens(text) + len(words),
        }
        created = int(time.time())
        kind = "chat.completion" if chat_route else "text_completion"
        head = {"id": "chatcmpl-fake", "created": created, "model": model}
        head["system_fingerprint"] = "fp_ollama"

        def choice(content: str, finish: str | None, *, delta: bool) -> dict[str, Any]:
            if not chat_route:
                return {"index": 0, "text": content, "finish_reason": finish}
            key = "delta" if delta else "message"
            return {
                "index": 0,
                key: {"role": "assistant", "content": content},
                "finish_reason": finish,
            }

        if not body.get("stream"):
            return JSONResponse(
                {
                    **head,
                    "object": kind,
                    "choices": [choice("".join(words), "stop", delta=False)],
                    "usage": usage,
                }
            )
        chunk_kind = "chat.completion.chunk" if chat_route else "text_completion"
        events: list[dict[str, Any] | str] = [
            {**head, "object": chunk_kind, "choices": [choice(w, None, delta=True)]} for w in words
        ]
        events.append({**head, "object": chunk_kind, "choices": [choice("", "stop", delta=True)]})
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            events.append({**head, "object": chunk_kind, "choices": [], "usage": usage})
        events.append("[DONE]")
        return sse_response(_sse(events))

    async def v1_embeddings(request: Request) -> Response:
        body, failed = await model_request(request, openai=True)
        if failed is not None:
            return failed
        raw = body.get("input", "")
        inputs = [str(x) for x in raw] if isinstance(raw, list) else [str(raw)]
        tokens = sum(_prompt_tokens(t) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "object": "embedding",
                        "embedding": _vector(t, fake.config.embedding_dim),
                        "index": i,
                    }
                    for i, t in enumerate(inputs)
                ],
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def control_state(request: Request) -> Response:
        return JSONResponse(fake.state())

    async def control_config(request: Request) -> Response:
        try:
            fake.config.update(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        fake._gate = asyncio.Event()
        return JSONResponse(fake.state())

    async def control_release(request: Request) -> Response:
        fake.release()
        return JSONResponse(fake.state())

    async def control_reset(request: Request) -> Response:
        fake.reset()
        return JSONResponse(fake.state())

    return Starlette(
        routes=[
            Route("/", root, methods=["GET", "HEAD"]),
            Route("/api/version", version, methods=["GET"]),
            Route("/api/tags", tags, methods=["GET"]),
            Route("/api/ps", ps, methods=["GET"]),
            Route("/api/show", show, methods=["POST"]),
            Route("/api/generate", generate, methods=["POST"]),
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/embed", embed, methods=["POST"]),
            Route("/api/embeddings", embeddings, methods=["POST"]),
            Route("/api/pull", pull, methods=["POST"]),
            Route("/v1/models", v1_models, methods=["GET"]),
            Route("/v1/chat/completions", v1_completion, methods=["POST"]),
            Route("/v1/completions", v1_completion, methods=["POST"]),
            Route("/v1/embeddings", v1_embeddings, methods=["POST"]),
            Route("/_fake/state", control_state, methods=["GET"]),
            Route("/_fake/config", control_config, methods=["POST"]),
            Route("/_fake/release", control_release, methods=["POST"]),
            Route("/_fake/reset", control_reset, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cesar_ollama_proxy.testing.fake_ollama",
        description="A fake Ollama server for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument("--tokens", type=int, default=5)
    parser.add_argument("--response-delay", type=float, default=0.0)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    fake = FakeOllama(
        FakeConfig(
            models=[m for m in args.models.split(",") if m],
            tokens=args.tokens,
            response_delay=args.response_delay,
            chunk_delay=args.chunk_delay,
        )
    )
    uvicorn.run(fake.app, host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
