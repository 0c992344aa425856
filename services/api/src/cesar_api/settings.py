"""The API's settings: the core ones plus where it listens, who may call it and how much."""

from __future__ import annotations

from cesar_core.events import EVENT_STREAM
from cesar_core.jobs import JobSettings
from cesar_core.ratelimit import parse_limits
from cesar_core.settings import load_settings
from pydantic import Field, field_validator

__all__ = ["ApiSettings", "load_api_settings"]


class ApiSettings(JobSettings):
    """Every field maps to one environment variable (the alias).

    A :class:`~cesar_core.settings.CoreSettings` through ``JobSettings`` (the API enqueues jobs,
    so it reads the same ``JOB_QUEUE_*`` variables as the worker)."""

    api_url: str = Field(default="http://localhost:8000", validation_alias="API_URL")
    api_host: str = Field(default="0.0.0.0", validation_alias="API_HOST")
    api_port: int = Field(default=8000, ge=0, le=65535, validation_alias="API_PORT")
    # comma-separated origins; empty means no cross-origin browser access at all
    cors_origins: str = Field(default="", validation_alias="API_CORS_ORIGINS")
    reads_require_key: bool = Field(default=False, validation_alias="READS_REQUIRE_KEY")

    rate_limit_enabled: bool = Field(default=True, validation_alias="RATE_LIMIT_ENABLED")
    rate_limit_per_key: str = Field(default="1200/minute", validation_alias="RATE_LIMIT_PER_KEY")
    rate_limit_per_address: str = Field(
        default="600/minute", validation_alias="RATE_LIMIT_PER_ADDRESS"
    )
    rate_limit_prefix: str = Field(default="cesar:ratelimit", validation_alias="RATE_LIMIT_PREFIX")

    max_body_bytes: int = Field(default=1_048_576, ge=1024, validation_alias="API_MAX_BODY_BYTES")
    # every API statement runs under this statement_timeout (a startup setting of each pooled
    # connection); a statement cut off is a 503
    statement_timeout_ms: int = Field(
        default=5000, ge=1, le=600_000, validation_alias="API_STATEMENT_TIMEOUT_MS"
    )
    # a job listing page stops before its items pass this many bytes (at least one item)
    max_page_bytes: int = Field(default=8_388_608, ge=1024, validation_alias="API_MAX_PAGE_BYTES")
    # peers whose X-Forwarded-For / X-Forwarded-Proto uvicorn believes: comma-separated IPs or
    # networks, "*" for any; empty (the default) believes nobody, so the client address is
    # always the TCP peer and nobody can pick their own rate-limit bucket
    forwarded_allow_ips: str = Field(default="", validation_alias="FORWARDED_ALLOW_IPS")

    event_stream: str = Field(default=EVENT_STREAM, validation_alias="EVENT_STREAM")
    ws_queue_size: int = Field(default=1000, ge=1, validation_alias="WS_QUEUE_SIZE")
    ws_ping_interval: float = Field(default=15.0, gt=0, validation_alias="WS_PING_INTERVAL")
    ws_replay_limit: int = Field(default=10_000, ge=1, validation_alias="WS_REPLAY_LIMIT")
    ws_resume_wait: float = Field(default=0.2, ge=0, validation_alias="WS_RESUME_WAIT")
    ws_max_clients: int = Field(default=10_000, ge=1, validation_alias="WS_MAX_CLIENTS")
    ws_max_message_bytes: int = Field(
        default=65_536, ge=1024, validation_alias="WS_MAX_MESSAGE_BYTES"
    )
    # open event streams one client address may hold at once (per API process)
    ws_max_per_address: int = Field(default=20, ge=1, validation_alias="WS_MAX_PER_ADDRESS")
    # new event streams per client address, shared by every replica through Redis
    ws_connect_rate: str = Field(default="60/minute", validation_alias="WS_CONNECT_RATE")
    # how long a stream waits for the first message {"api_key": ...} when reads need a key
    ws_auth_timeout: float = Field(default=5.0, gt=0, validation_alias="WS_AUTH_TIMEOUT")

    health_probe_timeout: float = Field(default=2.0, gt=0, validation_alias="HEALTH_PROBE_TIMEOUT")
    worker_stale_seconds: float = Field(default=60.0, gt=0, validation_alias="WORKER_STALE_SECONDS")
    db_connect_max_delay: float = Field(default=30.0, gt=0, validation_alias="DB_CONNECT_MAX_DELAY")
    uvicorn_access_log: bool = Field(default=False, validation_alias="API_ACCESS_LOG")

    # A2A: how often a waiting SendMessage or a stream looks at the task's job, how long a
    # blocking SendMessage waits for the final state, and how long one stream may last
    a2a_poll_seconds: float = Field(default=0.25, gt=0, le=60, validation_alias="A2A_POLL_SECONDS")
    a2a_send_wait_seconds: float = Field(
        default=60.0, ge=0, le=3600, validation_alias="A2A_SEND_WAIT_SECONDS"
    )
    a2a_stream_max_seconds: float = Field(
        default=3600.0, gt=0, validation_alias="A2A_STREAM_MAX_SECONDS"
    )

    @field_validator("rate_limit_per_key", "rate_limit_per_address", "ws_connect_rate")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        try:
            if not parse_limits(value):
                raise ValueError("empty")
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '600/minute': {value!r}") from exc
        return value

    @property
    def forwarded_allow_list(self) -> list[str]:
        return [p.strip() for p in self.forwarded_allow_ips.split(",") if p.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


def load_api_settings() -> ApiSettings:
    return load_settings(ApiSettings)
