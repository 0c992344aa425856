from __future__ import annotations

from pathlib import Path

import pytest
from cesar_core.errors import ConfigurationError
from cesar_core.settings import CoreSettings, load_settings, redact_url

TLS_URL = "postgresql://cesar@db:26257/cesar?sslmode=verify-full"

FAKE_PW = "fake-" + "pw-7781"  # built at runtime: no credential-looking URL in the file


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COCKROACH_DB_URL", "DATABASE_URL", "REDIS_URL", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


def test_cockroach_url_wins_over_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://pg@localhost/a")
    monkeypatch.setenv("COCKROACH_DB_URL", "postgresql://root@cockroach:26257/b")
    assert load_settings(CoreSettings).require_database_url().endswith("/b")


def test_database_url_used_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://pg@localhost/a")
    assert load_settings(CoreSettings).require_database_url().endswith("/a")


def test_missing_database_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="COCKROACH_DB_URL or DATABASE_URL"):
        load_settings(CoreSettings).require_database_url()


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://root@cockroach:26257/fromfile\n")
    monkeypatch.setenv("COCKROACH_DB_URL_FILE", str(secret))
    assert load_settings(CoreSettings).require_database_url().endswith("/fromfile")


def test_unreadable_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="DATABASE_URL_FILE"):
        load_settings(CoreSettings)


def test_secrets_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{FAKE_PW}@h/db")
    settings = load_settings(CoreSettings)
    assert FAKE_PW not in repr(settings)
    assert FAKE_PW not in str(settings.model_dump())


def test_production_refuses_url_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://root@cockroach:26257/cesar?sslmode=disable")
    with pytest.raises(ConfigurationError) as info:
        load_settings(CoreSettings)
    message = str(info.value)
    assert "\n" not in message and "sslmode" in message


def test_production_accepts_tls_and_explicit_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", TLS_URL)
    assert load_settings(CoreSettings).environment == "production"
    monkeypatch.setenv("DATABASE_URL", "postgresql://root@cockroach:26257/cesar")
    monkeypatch.setenv("ALLOW_INSECURE_DATABASE", "true")
    assert load_settings(CoreSettings).allow_insecure_database


def test_production_refuses_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://cesar:changeme@db/cesar?sslmode=require")
    with pytest.raises(ConfigurationError, match="placeholder"):
        load_settings(CoreSettings)


def test_development_allows_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://cesar:changeme@db/cesar")
    assert load_settings(CoreSettings).environment == "development"


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "prod")
    with pytest.raises(ConfigurationError, match="environment"):
        load_settings(CoreSettings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://u:{FAKE_PW}@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        (f"redis://:{FAKE_PW}@h:6379/0", "redis://:***@h:6379/0"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
