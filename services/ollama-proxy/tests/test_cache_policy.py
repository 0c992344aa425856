"""The cache's decisions and keys, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest
from cesar_ollama_proxy.cache import cache_key, decide
from cesar_ollama_proxy.routes import classify

GENERATE = classify("POST", "/api/generate")
V1_CHAT = classify("POST", "/v1/chat/completions")
EMBED = classify("POST", "/api/embed")
assert GENERATE and V1_CHAT and EMBED


def _decide(payload: dict[str, Any], route: Any = GENERATE, **kw: Any) -> str:
    args: dict[str, Any] = {
        "mode": "deterministic",
        "cache_control": "",
        "x_cache": "",
        "prefix": "p:",
    }
    args.update(kw)
    return decide(route, payload, **args).status


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"model": "m", "prompt": "x", "options": {"temperature": 0}}, "MISS"),
        ({"model": "m", "prompt": "x", "options": {"temperature": 0.0}}, "MISS"),
        ({"model": "m", "prompt": "x", "options": {"seed": 42, "temperature": 0.9}}, "MISS"),
        ({"model": "m", "prompt": "x", "options": {"seed": -1}}, "SKIP"),
        ({"model": "m", "prompt": "x", "options": {"temperature": 0.7}}, "SKIP"),
        ({"model": "m", "prompt": "x"}, "SKIP"),
        ({"model": "m", "prompt": "x", "options": {"temperature": False}}, "SKIP"),
    ],
)
def test_native_routes_cache_deterministic_requests_only(
    payload: dict[str, Any], expected: str
) -> None:
    assert _decide(payload) == expected


def test_openai_routes_read_sampling_at_top_level() -> None:
    assert _decide({"model": "m", "messages": [], "temperature": 0}, V1_CHAT) == "MISS"
    assert _decide({"model": "m", "messages": [], "seed": 7}, V1_CHAT) == "MISS"
    assert _decide({"model": "m", "messages": [], "options": {"temperature": 0}}, V1_CHAT) == "SKIP"


def test_embeddings_are_always_deterministic() -> None:
    assert _decide({"model": "m", "input": "x"}, EMBED) == "MISS"


@pytest.mark.parametrize(
    ("cache_control", "x_cache"),
    [
        ("no-cache", ""),
        ("no-store", ""),
        ("max-age=0, no-cache", ""),
        ("", "bypass"),
        ("", "BYPASS"),
    ],
)
def test_requests_that_ask_not_to_be_cached_are_never_cached(
    cache_control: str, x_cache: str
) -> None:
    payload = {"model": "m", "prompt": "x", "options": {"temperature": 0}}
    assert _decide(payload, cache_control=cache_control, x_cache=x_cache) == "BYPASS"
    assert _decide(payload, cache_control=cache_control, x_cache=x_cache, mode="all") == "BYPASS"


def test_force_header_and_mode_all_cache_anything_and_mode_off_nothing() -> None:
    payload = {"model": "m", "prompt": "x", "options": {"temperature": 0.8}}
    assert _decide(payload, x_cache="force") == "MISS"
    assert _decide(payload, mode="all") == "MISS"
    assert _decide({**payload, "options": {"temperature": 0}}, mode="off") == "SKIP"
    assert _decide({}, classify("GET", "/api/tags")) == "SKIP"


def test_key_ignores_transport_fields_key_order_runtime_options_and_latest_tag() -> None:
    base = {"model": "llama3", "prompt": "hi", "options": {"temperature": 0, "top_k": 1}}
    same = {
        "options": {"top_k": 1, "num_thread": 8, "temperature": 0},
        "prompt": "hi",
        "keep_alive": "5m",
        "stream": True,
        "model": "llama3:latest",
    }
    assert cache_key(GENERATE, base, "p:") == cache_key(GENERATE, same, "p:")
    assert cache_key(GENERATE, base, "p:").startswith("p:cache:v1:")


def test_key_separates_stream_shapes_prompts_options_models_and_routes() -> None:
    base = {"model": "m", "prompt": "hi", "options": {"temperature": 0}}
    key = cache_key(GENERATE, base, "p:")
    assert key != cache_key(GENERATE, {**base, "stream": False}, "p:")
    assert key != cache_key(GENERATE, {**base, "prompt": "hi!"}, "p:")
    assert key != cache_key(GENERATE, {**base, "options": {"temperature": 0, "top_k": 2}}, "p:")
    assert key != cache_key(GENERATE, {**base, "model": "other"}, "p:")
    assert key != cache_key(GENERATE, {**base, "format": "json"}, "p:")
    chat = classify("POST", "/api/chat")
    assert chat is not None
    assert key != cache_key(chat, base, "p:")
    assert key != cache_key(GENERATE, base, "q:")
