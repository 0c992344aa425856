"""The proxy's exceptions, one tree; each knows its HTTP status (mapped in one handler).

ProxyError                  root; status 500
├── InvalidRequest          400: the body is not a JSON object, or a field is wrong
├── RequestTooLarge         413: the body is larger than PROXY_MAX_BODY_BYTES
├── NotFound                404: not an Ollama route
├── RateLimited             429 with Retry-After
├── ProxyBusy               503: waited too long for an upstream slot
├── UpstreamUnavailable     502: Ollama cannot be reached (or closed the connection)
└── UpstreamTimeout         504: Ollama did not answer in time
"""

from __future__ import annotations

from cesar_core.errors import CesarError

__all__ = [
    "InvalidRequest",
    "NotFound",
    "ProxyBusy",
    "ProxyError",
    "RateLimited",
    "RequestTooLarge",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class ProxyError(CesarError):
    status_code = 500
    outcome = "proxy_error"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidRequest(ProxyError):
    status_code = 400
    outcome = "client_error"


class RequestTooLarge(ProxyError):
    status_code = 413
    outcome = "client_error"


class NotFound(ProxyError):
    status_code = 404
    outcome = "client_error"


class RateLimited(ProxyError):
    status_code = 429
    outcome = "rate_limited"
    #: "client" or "model": which limit refused
    scope = "client"


class ProxyBusy(ProxyError):
    status_code = 503
    outcome = "busy"


class UpstreamUnavailable(ProxyError):
    status_code = 502
    outcome = "unreachable"


class UpstreamTimeout(ProxyError):
    status_code = 504
    outcome = "timeout"
