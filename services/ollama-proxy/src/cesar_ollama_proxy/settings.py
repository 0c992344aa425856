"""The proxy's settings: the core ones plus the upstream, the cache, the limits and the bounds.

Every variable and its default is listed in the package README. Built once by
:func:`load_proxy_settings` at start-up and passed down.
"""

from __future__ import annotations

from typing import Literal

from cesar_core.ratelimit import parse_limits
from cesar_core.settings import CoreSettings, load_settings
from limits import RateLimitItem
from pydantic import Field, field_validator

__all__ = ["CacheMode", "ProxySettings", "load_proxy_settings"]

CacheMode = Literal["deterministic", "all", "off"]


class ProxySettings(CoreSettings):
    """Settings of ``cesar-ollama-proxy``."""

    ollama_url: str = Field(default="http://ollama:11434", validation_alias="OLLAMA_URL")
    proxy_host: str = Field(default="0.0.0.0", validation_alias="PROXY_HOST")
    proxy_port: int = Field(default=11435, ge=1, le=65535, validation_alias="PROXY_PORT")
    # peers whose X-Forwarded-For / X-Forwarded-Proto uvicorn believes: comma-separated IPs or
    # networks, "*" for any; empty (the default) believes nobody, so the client address is
    # always the TCP peer and nobody can pick their own rate-limit bucket
    forwarded_allow_ips: str = Field(default="", validation_alias="FORWARDED_ALLOW_IPS")

    # response cache
    cache_mode: CacheMode = Field(default="deterministic", validation_alias="PROXY_CACHE_MODE")
    cache_ttl_seconds: int = Field(default=86400, ge=1, validation_alias="PROXY_CACHE_TTL_SECONDS")
    cache_max_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, validation_alias="PROXY_CACHE_MAX_BYTES"
    )
    # in-process copy of Redis hits and stores (0 bytes or 0 s turns it off)
    cache_l1_max_bytes: int = Field(
        default=32 * 1024 * 1024, ge=0, validation_alias="PROXY_CACHE_L1_MAX_BYTES"
    )
    cache_l1_ttl_seconds: float = Field(
        default=60.0, ge=0, validation_alias="PROXY_CACHE_L1_TTL_SECONDS"
    )
    redis_prefix: str = Field(default="cesar:ollama-proxy:", validation_alias="PROXY_REDIS_PREFIX")
    redis_timeout: float = Field(default=1.0, gt=0, validation_alias="PROXY_REDIS_TIMEOUT")

    # rate limits, shared by every replica through Redis ("" disables one); every request
    # counts against its address and its client (bearer token, else address)
    rate_limit_address: str = Field(
        default="600/minute", validation_alias="PROXY_RATE_LIMIT_ADDRESS"
    )
    rate_limit_client: str = Field(default="600/minute", validation_alias="PROXY_RATE_LIMIT_CLIENT")
    rate_limit_model: str = Field(default="1200/minute", validation_alias="PROXY_RATE_LIMIT_MODEL")

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
    # bodies are read whole to learn the model, and parsed JSON takes several times its size
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, validation_alias="PROXY_MAX_BODY_BYTES"
    )

    # observability
    metrics_flush_seconds: float = Field(
        default=30.0, gt=0, validation_alias="PROXY_METRICS_FLUSH_SECONDS"
    )
    max_model_labels: int = Field(default=50, ge=1, validation_alias="PROXY_MAX_MODEL_LABELS")
    log_prompts: bool = Field(default=False, validation_alias="LOG_PROMPTS")

    @field_validator("rate_limit_address", "rate_limit_client", "rate_limit_model")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        parse_limits(value)
        return value

    @field_validator("ollama_url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @property
    def forwarded_allow_list(self) -> list[str]:
        return [p.strip() for p in self.forwarded_allow_ips.split(",") if p.strip()]

    @property
    def address_limits(self) -> list[RateLimitItem]:
        return parse_limits(self.rate_limit_address)

    @property
    def client_limits(self) -> list[RateLimitItem]:
        return parse_limits(self.rate_limit_client)

    @property
    def model_limits(self) -> list[RateLimitItem]:
        return parse_limits(self.rate_limit_model)


def load_proxy_settings(**overrides: object) -> ProxySettings:
    return load_settings(ProxySettings, **overrides)
