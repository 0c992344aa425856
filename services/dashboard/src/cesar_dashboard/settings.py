"""The dashboard's settings: the core ones plus where to read and whom to ask for actions."""

from __future__ import annotations

from cesar_core.errors import ConfigurationError
from cesar_core.settings import CoreSettings, load_settings
from pydantic import Field, SecretStr, field_validator, model_validator

__all__ = ["DashboardSettings", "load_dashboard_settings"]

_TLS_SSLMODES = ("sslmode=require", "sslmode=verify-ca", "sslmode=verify-full")


class DashboardSettings(CoreSettings):
    """``DASHBOARD_DATABASE_URL`` should name a read-only role; it falls back to the core URL.

    Every connection also sets ``default_transaction_read_only=on``, so the database refuses
    writes even when the role could write.
    """

    dashboard_database_url: SecretStr | None = Field(
        default=None, validation_alias="DASHBOARD_DATABASE_URL"
    )
    api_url: str = Field(default="http://localhost:8000", validation_alias="API_URL")
    api_key: SecretStr | None = Field(default=None, validation_alias="API_KEY")
    ollama_proxy_url: str = Field(
        default="http://ollama-proxy:11435", validation_alias="OLLAMA_PROXY_URL"
    )
    # optional login; required in production when API_KEY lets the dashboard act
    dashboard_password: SecretStr | None = Field(
        default=None, validation_alias="DASHBOARD_PASSWORD"
    )
    allow_unauthenticated_dashboard: bool = Field(
        default=False, validation_alias="ALLOW_UNAUTHENTICATED_DASHBOARD"
    )
    refresh_seconds: float = Field(default=15.0, ge=0, validation_alias="REFRESH_SECONDS")
    http_timeout: float = Field(default=2.0, gt=0, validation_alias="DASHBOARD_HTTP_TIMEOUT")
    db_timeout: float = Field(default=5.0, gt=0, validation_alias="DASHBOARD_DB_TIMEOUT")

    @field_validator("dashboard_password", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _login_when_it_can_act_in_production(self) -> DashboardSettings:
        if (
            self.environment == "production"
            and self.api_key is not None
            and self.dashboard_password is None
            and not self.allow_unauthenticated_dashboard
        ):
            raise ValueError(
                "API_KEY is set, so anyone reaching the dashboard could retry and cancel jobs, "
                "but DASHBOARD_PASSWORD is not: set DASHBOARD_PASSWORD (or "
                "DASHBOARD_PASSWORD_FILE), or ALLOW_UNAUTHENTICATED_DASHBOARD=true when "
                "something in front of it already checks who comes in"
            )
        return self

    @model_validator(mode="after")
    def _dashboard_url_tls_in_production(self) -> DashboardSettings:
        if self.environment != "production" or self.allow_insecure_database:
            return self
        url = self.dashboard_database_url
        if url is not None and not any(m in url.get_secret_value() for m in _TLS_SSLMODES):
            raise ValueError(
                "DASHBOARD_DATABASE_URL has no sslmode=require/verify-ca/verify-full; use TLS "
                "in production (or ALLOW_INSECURE_DATABASE=true)"
            )
        return self

    @property
    def api_base(self) -> str:
        return self.api_url.rstrip("/")

    @property
    def ollama_proxy_base(self) -> str:
        return self.ollama_proxy_url.rstrip("/")

    def read_database_url(self) -> str:
        """The URL the dashboard reads with: DASHBOARD_DATABASE_URL, else the core URL."""
        if self.dashboard_database_url is not None:
            return self.dashboard_database_url.get_secret_value()
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        raise ConfigurationError(
            "set DASHBOARD_DATABASE_URL (a read-only role) or COCKROACH_DB_URL / DATABASE_URL"
        )


def load_dashboard_settings() -> DashboardSettings:
    return load_settings(DashboardSettings)
