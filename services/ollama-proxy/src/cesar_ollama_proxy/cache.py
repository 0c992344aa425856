"""The response cache: which requests may be cached, their key, and the Redis store.

Decisions (see the README):

- Eligible: inference routes whose answer is reproducible: ``temperature`` 0 or a fixed
  ``seed`` >= 0 (in ``options`` for Ollama's routes, at top level for ``/v1``), and every
  embedding request. ``X-Cache: force`` or ``PROXY_CACHE_MODE=all`` caches any inference
  request; ``PROXY_CACHE_MODE=off`` caches nothing.
- Never: ``Cache-Control: no-cache``/``no-store`` or ``X-Cache: bypass`` (neither read nor
  written).
- Key: sha256 of canonical JSON (sorted keys, no whitespace) of the route, the *effective*
  ``stream`` flag and the body without transport-only fields (``keep_alive``, ``stream``,
  runtime-only ``options`` such as ``num_thread``); a model without a tag gets ``:latest``.
  ``stream`` is part of the key because a streamed and a non-streamed answer have different
  shapes; each is stored exactly as Ollama sent it and replayed byte for byte.
- Only complete successful answers are stored (200, and for streams a final ``done`` line or
  ``data: [DONE]`` with no error line), up to ``PROXY_CACHE_MAX_BYTES``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cesar_core.redis import RedisClient
from redis.exceptions import RedisError

from cesar_ollama_proxy.routes import Route
from cesar_ollama_proxy.settings import CacheMode

__all__ = [
    "CacheDecision",
    "CachedResponse",
    "ResponseCache",
    "cache_key",
    "decide",
    "effective_stream",
]

log = logging.getLogger(__name__)

#: what the ``X-Cache`` response header says
CacheStatus = Literal["HIT", "MISS", "BYPASS", "SKIP"]

_TRANSPORT_FIELDS = frozenset({"stream", "keep_alive"})
_RUNTIME_OPTIONS = frozenset(
    {"num_thread", "num_gpu", "main_gpu", "use_mmap", "use_mlock", "low_vram", "numa", "num_batch"}
)
_KEY_VERSION = 1


@dataclass(frozen=True, slots=True)
class CacheDecision:
    """``status`` is what the response will say unless it is a hit (then ``HIT``)."""

    status: CacheStatus
    key: str | None = None

    @property
    def eligible(self) -> bool:
        return self.key is not None


@dataclass(frozen=True, slots=True)
class CachedResponse:
    content_type: str
    body: bytes

    def encode(self) -> bytes:
        return self.content_type.encode() + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> CachedResponse:
        content_type, _, body = raw.partition(b"\n")
        return cls(content_type.decode(), body)


def effective_stream(route: Route, payload: dict[str, Any]) -> bool:
    if not route.streams:
        return False
    value = payload.get("stream")
    return route.stream_default if value is None else bool(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _deterministic(route: Route, payload: dict[str, Any]) -> bool:
    if route.always_deterministic:
        return True
    if route.openai:
        sampling = payload
    else:
        options = payload.get("options")
        sampling = options if isinstance(options, dict) else {}
    temperature = sampling.get("temperature")
    seed = sampling.get("seed")
    if _is_number(temperature) and temperature == 0:
        return True
    return isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0


def _canonical_model(name: object) -> object:
    if isinstance(name, str) and name and ":" not in name.rsplit("/", 1)[-1]:
        return f"{name}:latest"
    return name


def cache_key(route: Route, payload: dict[str, Any], prefix: str) -> str:
    body = {k: v for k, v in payload.items() if k not in _TRANSPORT_FIELDS}
    if "model" in body and not route.openai:
        body["model"] = _canonical_model(body["model"])
    options = body.get("options")
    if isinstance(options, dict):
        body["options"] = {k: v for k, v in options.items() if k not in _RUNTIME_OPTIONS}
    canonical = json.dumps(
        {
            "v": _KEY_VERSION,
            "route": route.name,
            "stream": effective_stream(route, payload),
            "body": body,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return f"{prefix}cache:v{_KEY_VERSION}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def _asks_no_cache(cache_control: str, x_cache: str) -> bool:
    directives = {d.strip().split("=", 1)[0].lower() for d in cache_control.split(",")}
    return bool(directives & {"no-cache", "no-store"}) or x_cache == "bypass"


def decide(
    route: Route,
    payload: dict[str, Any],
    *,
    mode: CacheMode,
    cache_control: str,
    x_cache: str,
    prefix: str,
) -> CacheDecision:
    """Whether (and under which key) this request's answer is read from / written to Redis."""
    if not route.cacheable or mode == "off":
        return CacheDecision("SKIP")
    x_cache = x_cache.strip().lower()
    if _asks_no_cache(cache_control, x_cache):
        return CacheDecision("BYPASS")
    if mode == "all" or x_cache == "force" or _deterministic(route, payload):
        return CacheDecision("MISS", cache_key(route, payload, prefix))
    return CacheDecision("SKIP")


class ResponseCache:
    """Redis store for cached answers. Redis errors never fail a request: a failed read is
    a miss, a failed write is logged, both counted by ``on_error``."""

    def __init__(
        self,
        redis: RedisClient,
        ttl_seconds: int,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._on_error = on_error

    def _failed(self, op: str, exc: Exception) -> None:
        log.warning("cache %s failed: %s", op, exc or type(exc).__name__)
        if self._on_error is not None:
            self._on_error(op)

    async def get(self, key: str) -> CachedResponse | None:
        try:
            raw = await self.redis.get(key)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("cache_get", exc)
            return None
        return None if raw is None else CachedResponse.decode(raw)

    async def put(self, key: str, response: CachedResponse) -> None:
        try:
            await self.redis.set(key, response.encode(), ex=self.ttl_seconds)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("cache_put", exc)
