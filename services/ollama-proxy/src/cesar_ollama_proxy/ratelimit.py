"""Rate limits per address, per client key and per model:
:class:`cesar_core.ratelimit.LeasedLimiter` (clock-aligned fixed windows, budget leased from
Redis and spent locally, shared by every replica), with the proxy's identities and its 429.

The proxy does not check bearer tokens (Ollama has none), so a token only names a client: the
client key is a hash of the token when there is one (tokens are never stored), else the
address, and every request also counts against its address, so fresh tokens do not buy fresh
budgets. Keys live under ``<PROXY_REDIS_PREFIX>ratelimit``. When Redis fails the proxy fails
open (serves, logs, counts ``redis_errors{op="ratelimit"}``).
"""

from __future__ import annotations

import hashlib

from cesar_core.ratelimit import Refusal

from cesar_ollama_proxy.errors import RateLimited

__all__ = ["address_key", "client_key", "rate_limited"]

#: what a refusal of each scope calls the one refused
_WHO = {"model": "model", "address": "address"}


def address_key(address: str | None) -> str:
    return f"addr:{address or 'unknown'}"


def client_key(authorization: str | None, address: str | None) -> str:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:24]
    return address_key(address)


def rate_limited(refusal: Refusal) -> RateLimited:
    """The 429 for a refusal of the ``address``, ``client`` or ``model`` limits."""
    what = _WHO.get(refusal.scope, "client")
    error = RateLimited(
        f"rate limit exceeded for this {what} ({refusal.limit}); retry in {refusal.retry_after}s",
        retry_after=refusal.retry_after,
    )
    error.scope = refusal.scope
    return error
