"""Settings shared by every service, read from the environment the operators already use.

Each service subclasses :class:`CoreSettings`, builds it once at start-up with
:func:`load_settings` and passes it down. Secrets are ``SecretStr`` and may also come from a
file named by ``<VARIABLE>_FILE`` (Docker secrets).
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

__all__ = [
    "CoreSettings",
    "Environment",
    "load_settings",
    "redact_url",
]

Environment = Literal["production", "staging", "development"]

_PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "placeholder", "example", "xxx")
_TLS_SSLMODES = {"require", "verify-ca", "verify-full"}

S = TypeVar("S", bound="CoreSettings")


def _env_names(name: str, field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [name.upper()]


class _SecretFileSource(PydanticBaseSettingsSource):
    """Reads ``<VAR>_FILE`` for every variable, so Docker secrets work for any setting."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for env_name in _env_names(field_name, field):
            path = os.environ.get(f"{env_name}_FILE")
            if path:
                try:
                    return Path(path).read_text().strip(), field_name, False
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


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _looks_placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(marker in lowered for marker in _PLACEHOLDER_MARKERS)


def _has_tls(url: str) -> bool:
    query = parse_qs(urlsplit(url).query)
    return bool(_TLS_SSLMODES & set(query.get("sslmode", [])))


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
        return (init_settings, env_settings, _SecretFileSource(settings_cls))

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
        url = self.database_url.get_secret_value() if self.database_url else ""
        if url and not self.allow_insecure_database and not _has_tls(url):
            raise ValueError(
                "the database URL has no sslmode=require/verify-ca/verify-full; use TLS in "
                "production (or ALLOW_INSECURE_DATABASE=true)"
            )
        return self

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
