"""What the proxy knows about each Ollama route: model work or not, its stream default,
its stream format and whether its answers may be cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Route", "StreamFormat", "classify"]

StreamFormat = Literal["ndjson", "sse"]


@dataclass(frozen=True, slots=True)
class Route:
    """``name`` is a bounded label (never the raw path) for metrics."""

    name: str
    #: the body is a JSON object naming a model, and the request is model work
    inference: bool = False
    #: the answer may be cached (when the request is deterministic)
    cacheable: bool = False
    #: the request body carries ``"stream"`` (Ollama progress routes, inference)
    streams: bool = False
    #: what ``"stream"`` means when the body leaves it out
    stream_default: bool = False
    stream_format: StreamFormat = "ndjson"
    #: the answer never depends on sampling (embeddings)
    always_deterministic: bool = False
    #: the OpenAI-compatible surface: errors in OpenAI's shape, sampling fields at top level
    openai: bool = False
    #: waits for one of the PROXY_MAX_CONCURRENT_UPSTREAM slots
    bounded: bool = False
    #: the body is read (and size-limited) to learn the model; else streamed through
    json_body: bool = False


_INFERENCE: dict[str, Any] = {
    "inference": True,
    "cacheable": True,
    "bounded": True,
    "json_body": True,
}

_ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/api/generate"): Route("generate", streams=True, stream_default=True, **_INFERENCE),
    ("POST", "/api/chat"): Route("chat", streams=True, stream_default=True, **_INFERENCE),
    ("POST", "/api/embed"): Route("embed", always_deterministic=True, **_INFERENCE),
    ("POST", "/api/embeddings"): Route("embeddings", always_deterministic=True, **_INFERENCE),
    ("POST", "/v1/chat/completions"): Route(
        "v1_chat", streams=True, stream_format="sse", openai=True, **_INFERENCE
    ),
    ("POST", "/v1/completions"): Route(
        "v1_completions", streams=True, stream_format="sse", openai=True, **_INFERENCE
    ),
    ("POST", "/v1/embeddings"): Route(
        "v1_embeddings", always_deterministic=True, openai=True, **_INFERENCE
    ),
    ("POST", "/api/pull"): Route("pull", streams=True, stream_default=True, json_body=True),
    ("POST", "/api/push"): Route("push", streams=True, stream_default=True, json_body=True),
    ("POST", "/api/create"): Route("create", streams=True, stream_default=True, json_body=True),
    ("POST", "/api/show"): Route("show", json_body=True),
    ("GET", "/api/tags"): Route("tags"),
    ("GET", "/api/ps"): Route("ps"),
    ("GET", "/api/version"): Route("version"),
    ("GET", "/"): Route("root"),
    ("HEAD", "/"): Route("root"),
    ("GET", "/v1/models"): Route("v1_models", openai=True),
}


def classify(method: str, path: str) -> Route | None:
    """The route for ``method path``; other ``/api/*`` and ``/v1/*`` pass through as
    ``api_other`` / ``v1_other``; anything else is not Ollama's (``None``)."""
    known = _ROUTES.get((method, path))
    if known is not None:
        return known
    if path.startswith("/api/"):
        return Route("api_other")
    if path.startswith("/v1/"):
        return Route("v1_other", openai=True)
    if path == "/":
        return Route("root")
    return None
