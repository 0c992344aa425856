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
- In front of Redis, each process keeps an in-process LRU copy (:class:`LocalCache`) of the
  answers it read from Redis or stored there, bounded by ``PROXY_CACHE_L1_MAX_BYTES``; an
  entry lives at most ``PROXY_CACHE_L1_TTL_SECONDS`` and never longer than its Redis entry
  (``PROXY_CACHE_TTL_SECONDS`` still bounds an answer's life). An answer is immutable per key
  (the key is the whole deterministic request), so a local copy never disagrees with Redis.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
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
    "LocalCache",
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


class LocalCache:
    """An in-process LRU of cached answers, bounded by bytes, each entry with its own expiry.

    Sizes count the body, the content type and the key plus a fixed per-entry overhead; an
    answer larger than the whole budget is not kept. ``max_bytes`` or ``ttl_seconds`` 0 turn
    it off. Not thread-safe (one event loop)."""

    ENTRY_OVERHEAD = 256

    def __init__(
        self,
        max_bytes: int,
        ttl_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self.enabled = max_bytes > 0 and ttl_seconds > 0
        self.bytes = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CachedResponse, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, response: CachedResponse, ttl_seconds: float) -> None:
        """Keep ``response`` for ``min(ttl_seconds, self.ttl_seconds)`` (``ttl_seconds``: what
        is left of its life in Redis)."""
        ttl = min(ttl_seconds, self.ttl_seconds)
        size = len(response.body) + len(response.content_type) + len(key) + self.ENTRY_OVERHEAD
        if not self.enabled or ttl <= 0 or size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + ttl, response, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))  # least recently used first

    def _drop(self, key: str) -> None:
        self.bytes -= self._entries.pop(key)[2]


class ResponseCache:
    """Redis store for cached answers. Redis errors never fail a request: a failed read is
    a miss, a failed write is logged, both counted by ``on_error``."""

    def __init__(
        self,
        redis: RedisClient,
        ttl_seconds: int,
        on_error: Callable[[str], None] | None = None,
        *,
        local: LocalCache | None = None,
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.local = local if local is not None else LocalCache(0, 0)
        self._on_error = on_error

    def _failed(self, op: str, exc: Exception) -> None:
        log.warning("cache %s failed: %s", op, exc or type(exc).__name__)
        if self._on_error is not None:
            self._on_error(op)

    async def get(self, key: str) -> CachedResponse | None:
        """The local copy, else Redis (GET and PTTL in one round trip; a hit is kept locally
        for what is left of its Redis life, at most the local TTL)."""
        local = self.local.get(key)
        if local is not None:
            return local
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                raw, pttl = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("cache_get", exc)
            return None
        if raw is None:
            return None
        response = CachedResponse.decode(raw)
        # PTTL -1: no expiry (not written by us); -2: gone since the GET
        remaining = self.ttl_seconds if pttl == -1 else int(pttl) / 1000
        self.local.put(key, response, remaining)
        return response

    async def put(self, key: str, response: CachedResponse) -> None:
        self.local.put(key, response, self.ttl_seconds)
        try:
            await self.redis.set(key, response.encode(), ex=self.ttl_seconds)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("cache_put", exc)
