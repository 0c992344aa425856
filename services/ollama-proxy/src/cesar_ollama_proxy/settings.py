"""The proxy's settings: the core ones plus the upstream, the cache, the limits and the bounds.

Every variable and its default is listed in the package README. Built once by
:func:`load_proxy_settings` at start-up and passed down.
"""

from __future__ import annotations

from typing import Literal

from cesar_core.settings import CoreSettings, load_settings
from limits import RateLimitItem, parse_many
from pydantic import Field, field_validator

__all__ = [
    "CacheMode",
    "ProxySettings",
    "RateLimitStrategy",
    "load_proxy_settings",
    "parse_rate_limits",
]

CacheMode = Literal["deterministic", "all", "off"]
RateLimitStrategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]


def parse_rate_limits(text: str) -> list[RateLimitItem]:
    """``"60/minute; 1000/hour"`` -> limit items; an empty string means no limit."""
    if not text.strip():
        return []
    try:
        return list(parse_many(text))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a rate limit; write e.g. '60/minute' or '10/second; 500/hour'"
        ) from exc


class ProxySettings(CoreSettings):
    """Settings of ``cesar-ollama-proxy``."""

    ollama_url: str = Field(default="http://ollama:11434", validation_alias="OLLAMA_URL")
    proxy_host: str = Field(default="0.0.0.0", validation_alias="PROXY_HOST")
    proxy_port: int = Field(default=11435, ge=1, le=65535, validation_alias="PROXY_PORT")

    # response cache
    cache_mode: CacheMode = Field(default="deterministic", validation_alias="PROXY_CACHE_MODE")
    cache_ttl_seconds: int = Field(default=86400, ge=1, validation_alias="PROXY_CACHE_TTL_SECONDS")
    cache_max_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, validation_alias="PROXY_CACHE_MAX_BYTES"
    )
    redis_prefix: str = Field(default="cesar:ollama-proxy:", validation_alias="PROXY_REDIS_PREFIX")
    redis_timeout: float = Field(default=1.0, gt=0, validation_alias="PROXY_REDIS_TIMEOUT")

    # rate limits, shared by every replica through Redis ("" disables one)
    rate_limit_client: str = Field(default="600/minute", validation_alias="PROXY_RATE_LIMIT_CLIENT")
    rate_limit_model: str = Field(default="1200/minute", validation_alias="PROXY_RATE_LIMIT_MODEL")
    rate_limit_strategy: RateLimitStrategy = Field(
        default="moving-window", validation_alias="PROXY_RATE_LIMIT_STRATEGY"
    )

    # upstream
    max_concurrent_upstream: int = Field(
        default=4, ge=1, validation_alias="PROXY_MAX_CONCURRENT_UPSTREAM"
    )
    queue_timeout_seconds: float = Field(
        default=300.0, gt=0, validation_alias="PROXY_QUEUE_TIMEOUT_SECONDS"
    )
    upstream_connect_timeout: float = Field(
        default=5.0, gt=0, validation_alias="PROXY_UPSTREAM_CONNECT_TIMEOUT"
    )
    upstream_read_timeout: float = Field(
        default=300.0, gt=0, validation_alias="PROXY_UPSTREAM_READ_TIMEOUT"
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, validation_alias="PROXY_MAX_BODY_BYTES"
    )

    # observability
    metrics_flush_seconds: float = Field(
        default=30.0, gt=0, validation_alias="PROXY_METRICS_FLUSH_SECONDS"
    )
    max_model_labels: int = Field(default=50, ge=1, validation_alias="PROXY_MAX_MODEL_LABELS")
    log_prompts: bool = Field(default=False, validation_alias="LOG_PROMPTS")

    @field_validator("rate_limit_client", "rate_limit_model")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        parse_rate_limits(value)
        return value

    @field_validator("ollama_url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @property
    def client_limits(self) -> list[RateLimitItem]:
        return parse_rate_limits(self.rate_limit_client)

    @property
    def model_limits(self) -> list[RateLimitItem]:
        return parse_rate_limits(self.rate_limit_model)


def load_proxy_settings(**overrides: object) -> ProxySettings:
    return load_settings(ProxySettings, **overrides)
