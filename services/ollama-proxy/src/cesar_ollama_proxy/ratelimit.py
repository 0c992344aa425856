"""Rate limits per client key and per model: :class:`cesar_core.ratelimit.LeasedLimiter`
(clock-aligned fixed windows, budget leased from Redis and spent locally, shared by every
replica), with the proxy's client identity and its 429.

The client key is a hash of the bearer token when there is one (tokens are never stored),
else the client address. Keys live under ``<PROXY_REDIS_PREFIX>ratelimit``. When Redis fails
the proxy fails open (serves, logs, counts ``redis_errors{op="ratelimit"}``).
"""

from __future__ import annotations

import hashlib

from cesar_core.ratelimit import Refusal

from cesar_ollama_proxy.errors import RateLimited

__all__ = ["client_key", "rate_limited"]


def client_key(authorization: str | None, address: str | None) -> str:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:24]
    return f"addr:{address or 'unknown'}"


def rate_limited(refusal: Refusal) -> RateLimited:
    """The 429 for a refusal of the ``client`` or ``model`` limits."""
    what = "model" if refusal.scope == "model" else "client"
    error = RateLimited(
        f"rate limit exceeded for this {what} ({refusal.limit}); retry in {refusal.retry_after}s",
        retry_after=refusal.retry_after,
    )
    error.scope = refusal.scope
    return error
