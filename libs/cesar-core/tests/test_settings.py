from __future__ import annotations

from pathlib import Path

import pytest
from cesar_core.errors import ConfigurationError
from cesar_core.settings import CoreSettings, load_settings, redact_url
from pydantic import Field, SecretStr

TLS_URL = "postgresql://cesar@db:26257/cesar?sslmode=verify-full"

FAKE_PW = "fake-" + "pw-7781"  # built at runtime: no credential-looking URL in the file


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "COCKROACH_DB_URL",
        "DATABASE_URL",
        "REDIS_URL",
        "ENVIRONMENT",
        "SUPABASE_DB_URL",
        "ALLOW_INSECURE_DATABASE",
        "ALLOW_INSECURE_REDIS",
    ):
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


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://h:5432/d?sslmode=require&password={FAKE_PW}",
         "postgresql://h:5432/d?sslmode=require&password=***"),
        (f"host=db port=5432 dbname=d password={FAKE_PW}", "host=db port=5432 dbname=d password=***"),
        (f"host=db password='{FAKE_PW} 2' dbname=d", "host=db password=*** dbname=d"),
    ],
)  # fmt: skip
def test_redact_url_hides_query_and_key_value_passwords(url: str, expected: str) -> None:
    assert redact_url(url) == expected


# -- a variable and its *_FILE ---------------------------------------------------------------


def test_variable_and_its_file_both_set_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "redis_url"
    secret.write_text("redis://from-file:6379/0\n")
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/0")
    monkeypatch.setenv("REDIS_URL_FILE", str(secret))
    with pytest.raises(ConfigurationError) as info:
        load_settings(CoreSettings)
    message = str(info.value)
    assert "REDIS_URL " in message and "REDIS_URL_FILE" in message and "\n" not in message


def test_empty_variable_does_not_hide_its_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "redis_url"
    secret.write_text("redis://from-file:6379/0\n")
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("REDIS_URL_FILE", str(secret))
    assert load_settings(CoreSettings).redis_url.get_secret_value() == "redis://from-file:6379/0"


def test_first_name_wins_whether_from_a_file_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://root@cockroach:26257/fromfile\n")
    monkeypatch.setenv("COCKROACH_DB_URL_FILE", str(secret))
    monkeypatch.setenv("DATABASE_URL", "postgresql://pg@localhost/fromenv")
    assert load_settings(CoreSettings).require_database_url().endswith("/fromfile")


# -- production: every URL, read as the driver reads it --------------------------------------


class WithSyncTarget(CoreSettings):
    """A service's own URL setting (as the worker's SUPABASE_DB_URL)."""

    supabase_db_url: SecretStr | None = Field(default=None, validation_alias="SUPABASE_DB_URL")


def test_production_reads_the_last_sslmode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", f"{TLS_URL}&sslmode=disable")
    with pytest.raises(ConfigurationError, match="last sslmode"):
        load_settings(CoreSettings)
    monkeypatch.setenv("DATABASE_URL", f"{TLS_URL.replace('verify-full', 'disable')}"
                       "&sslmode=verify-full")  # fmt: skip
    assert load_settings(CoreSettings).environment == "production"


def test_production_checks_every_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", TLS_URL)
    monkeypatch.setenv("SUPABASE_DB_URL", f"postgresql://sync:{FAKE_PW}@replica:5432/cesar")
    with pytest.raises(ConfigurationError) as info:
        load_settings(WithSyncTarget)
    message = str(info.value)
    assert "SUPABASE_DB_URL (replica:5432/cesar)" in message and FAKE_PW not in message
    monkeypatch.setenv("SUPABASE_DB_URL", "postgresql://sync@replica:5432/cesar?sslmode=require")
    assert load_settings(WithSyncTarget).supabase_db_url is not None


def test_production_needs_tls_to_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", TLS_URL)
    monkeypatch.setenv("REDIS_URL", f"redis://:{FAKE_PW}@redis:6379/0")
    with pytest.raises(ConfigurationError) as info:
        load_settings(CoreSettings)
    message = str(info.value)
    assert "REDIS_URL (redis:6379/0)" in message and "rediss://" in message
    assert FAKE_PW not in message and "ALLOW_INSECURE_REDIS" in message
    monkeypatch.setenv("REDIS_URL", f"rediss://:{FAKE_PW}@redis:6379/0")
    assert load_settings(CoreSettings).environment == "production"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")  # loopback never leaves the host
    assert load_settings(CoreSettings).environment == "production"
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("ALLOW_INSECURE_REDIS", "true")
    assert load_settings(CoreSettings).allow_insecure_redis
