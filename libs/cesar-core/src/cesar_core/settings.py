"""Settings shared by every service, read from the environment the operators already use.

Each service subclasses :class:`CoreSettings`, builds it once at start-up with
:func:`load_settings` and passes it down. Secrets are ``SecretStr`` and may also come from a
file named by ``<VARIABLE>_FILE`` (Docker secrets); setting both is refused.

In ``production`` every database and Redis URL of the settings (whatever its variable) must
use TLS, read the way the drivers read it: for PostgreSQL-wire URLs the *last* ``sslmode``
(asyncpg keeps the last of a repeated parameter) must be require/verify-ca/verify-full; for
Redis the scheme must be ``rediss://`` (a loopback host or a unix socket is exempt).
``ALLOW_INSECURE_DATABASE`` / ``ALLOW_INSECURE_REDIS`` switch a check off deliberately.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from cesar_core.errors import ConfigurationError
from cesar_core.redaction import describe_target, redact_url

__all__ = [
    "CoreSettings",
    "Environment",
    "describe_target",
    "load_settings",
    "redact_url",
]

Environment = Literal["production", "staging", "development"]

_PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "placeholder", "example", "xxx")
# asyncpg also accepts the underscore spellings (SSLMode.parse)
_TLS_SSLMODES = {"require", "verify-ca", "verify-full", "verify_ca", "verify_full"}
_DATABASE_SCHEMES = {"postgresql", "postgres", "cockroachdb", "cockroach"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}

S = TypeVar("S", bound="CoreSettings")


def _env_names(name: str, field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [name.upper()]


class _SecretFileSource(PydanticBaseSettingsSource):
    """Reads ``<VAR>_FILE`` for every variable, so Docker secrets work for any setting.

    It comes before the environment source, and a field whose names are tried in order
    (``COCKROACH_DB_URL`` before ``DATABASE_URL``) takes the first name set either way, so a
    file never loses silently to a later name. ``<VAR>`` and ``<VAR>_FILE`` both set is an
    error: which one was meant cannot be known."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        in_environment = {name.upper() for name, value in os.environ.items() if value}
        for env_name in _env_names(field_name, field):
            path = os.environ.get(f"{env_name}_FILE")
            if path and env_name.upper() in in_environment:
                raise ConfigurationError(
                    f"both {env_name} and {env_name}_FILE are set; set only one of them"
                )
            if env_name.upper() in in_environment:
                return None, field_name, False  # the environment source reads it
            if path:
                # keyed as the environment source keys it, so alias order decides as there
                key = env_name if field.validation_alias is not None else field_name
                try:
                    return Path(path).read_text().strip(), key, False
                except OSError as exc:
                    raise ConfigurationError(
                        f"{env_name}_FILE={path} cannot be read: {exc.strerror}"
                    ) from exc
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


def _looks_placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(marker in lowered for marker in _PLACEHOLDER_MARKERS)


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def _database_tls(url: str) -> bool:
    """The last ``sslmode`` decides, as asyncpg reads it (``parse_qs``, last value wins)."""
    modes = parse_qs(urlsplit(url).query, keep_blank_values=True).get("sslmode", [])
    return bool(modes) and modes[-1] in _TLS_SSLMODES


def _redis_tls(url: str) -> bool:
    """redis-py speaks TLS only for ``rediss://``; loopback and sockets never leave the host."""
    scheme = _scheme(url)
    if scheme in ("rediss", "unix"):
        return True
    try:
        host = urlsplit(url).hostname or "localhost"
    except ValueError:
        return False
    return host in _LOOPBACK_HOSTS


class CoreSettings(BaseSettings):
    """Settings every service needs. Field names map to the documented variables."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    environment: Environment = "development"
    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("COCKROACH_DB_URL", "DATABASE_URL")
    )
    redis_url: SecretStr = Field(
        default=SecretStr("redis://localhost:6379/0"), validation_alias="REDIS_URL"
    )
    allow_insecure_database: bool = Field(default=False, validation_alias="ALLOW_INSECURE_DATABASE")
    allow_insecure_redis: bool = Field(default=False, validation_alias="ALLOW_INSECURE_REDIS")
    allow_placeholder_secrets: bool = Field(
        default=False, validation_alias="ALLOW_PLACEHOLDER_SECRETS"
    )
    db_pool_min_size: int = Field(default=1, ge=0, validation_alias="DB_POOL_MIN_SIZE")
    db_pool_max_size: int = Field(default=10, ge=1, validation_alias="DB_POOL_MAX_SIZE")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_json: bool = Field(default=True, validation_alias="LOG_JSON")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the file source first: it steps aside for a variable that is set (see its docstring)
        return (init_settings, _SecretFileSource(settings_cls), env_settings)

    def secret_fields(self) -> dict[str, SecretStr]:
        return {
            name: value
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        }

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> CoreSettings:
        if self.environment != "production":
            return self
        if not self.allow_placeholder_secrets:
            for name, secret in self.secret_fields().items():
                if _looks_placeholder(secret.get_secret_value()):
                    raise ValueError(
                        f"{name.upper()} holds a placeholder value; set a real secret "
                        "(or ALLOW_PLACEHOLDER_SECRETS=true)"
                    )
        for name, url in self._connection_urls():
            scheme = _scheme(url)
            insecure_database = scheme in _DATABASE_SCHEMES and not _database_tls(url)
            if insecure_database and not self.allow_insecure_database:
                raise ValueError(
                    f"{name} ({describe_target(url)}) does not end with sslmode=require/"
                    "verify-ca/verify-full (the last sslmode counts); use TLS in "
                    "production (or ALLOW_INSECURE_DATABASE=true)"
                )
            insecure_redis = scheme in _REDIS_SCHEMES and not _redis_tls(url)
            if insecure_redis and not self.allow_insecure_redis:
                raise ValueError(
                    f"{name} ({describe_target(url)}) is not rediss://; use TLS to Redis in "
                    "production (or ALLOW_INSECURE_REDIS=true)"
                )
        return self

    def _connection_urls(self) -> list[tuple[str, str]]:
        """Every setting holding a URL, as ``(its variable names, the URL)``: the checks
        cover each service's own URLs too (SUPABASE_DB_URL, DASHBOARD_DATABASE_URL, ...)."""
        urls: list[tuple[str, str]] = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, str) and "://" in value:
                urls.append(("/".join(_env_names(name, field)), value.strip()))
        return urls

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigurationError("set COCKROACH_DB_URL or DATABASE_URL to the database URL")
        return self.database_url.get_secret_value()


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings once, turning validation errors into one readable line."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from exc
