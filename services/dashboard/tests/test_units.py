"""Settings, the console script's command line, and the search escaping."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from cesar_core.errors import ConfigurationError
from cesar_dashboard.cli import APP_PATH, command
from cesar_dashboard.repository import JobFilter, escape_like
from cesar_dashboard.settings import DashboardSettings, load_dashboard_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DASHBOARD_DATABASE_URL",
        "DATABASE_URL",
        "COCKROACH_DB_URL",
        "API_URL",
        "API_KEY",
        "OLLAMA_PROXY_URL",
        "REFRESH_SECONDS",
        "ENVIRONMENT",
        "DASHBOARD_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    cfg = load_dashboard_settings()
    assert cfg.api_base == "http://localhost:8000"
    assert cfg.ollama_proxy_base == "http://ollama-proxy:11435"
    assert cfg.api_key is None
    assert cfg.refresh_seconds == 15.0


def test_dashboard_url_wins_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db:5432/cesar")
    assert load_dashboard_settings().read_database_url() == "postgresql://app@db:5432/cesar"
    monkeypatch.setenv("COCKROACH_DB_URL", "postgresql://root@crdb:26257/cesar")
    assert load_dashboard_settings().read_database_url().startswith("postgresql://root@crdb")
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "postgresql://dashboard_ro@crdb:26257/cesar")
    assert load_dashboard_settings().read_database_url().startswith("postgresql://dashboard_ro")


def test_no_database_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="DASHBOARD_DATABASE_URL"):
        load_dashboard_settings().read_database_url()


def test_api_key_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "k-123")
    cfg = load_dashboard_settings()
    assert "k-123" not in repr(cfg)
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "k-123"


def test_production_needs_tls_on_the_dashboard_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "postgresql://ro@db:5432/cesar")
    with pytest.raises(ConfigurationError, match="sslmode"):
        load_dashboard_settings()
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "postgresql://ro@db:5432/cesar?sslmode=require")
    assert isinstance(load_dashboard_settings(), DashboardSettings)


def test_bad_refresh_interval_is_one_readable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFRESH_SECONDS", "-1")
    with pytest.raises(ConfigurationError, match=r"REFRESH_SECONDS|refresh_seconds"):
        load_dashboard_settings()


def test_console_script_runs_streamlit_on_port_3000_headless() -> None:
    argv = command([])
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    flags = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert flags["--server.port"] == "3000"
    assert flags["--server.headless"] == "true"
    assert APP_PATH.is_file()


def test_console_script_flags_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_PORT", "3100")
    assert command([])[command([]).index("--server.port") + 1] == "3100"
    argv = command(["--server.port=4000", "--server.address", "127.0.0.1"])
    assert "--server.port" not in argv
    assert argv[-3:] == ["--server.port=4000", "--server.address", "127.0.0.1"]
    assert argv.count("--server.address") == 1


def test_search_escapes_like_wildcards() -> None:
    assert escape_like("50%_a\\b") == "50\\%\\_a\\\\b"
    params = JobFilter(search=" AbC ").params()
    assert params[3:] == ("abc%", "%AbC%")
    assert JobFilter().params() == (None, None, None, None, None)


def test_api_health_body_names_the_unhealthy_components() -> None:
    from cesar_dashboard.health import _api_detail

    body = {
        "status": "degraded",
        "components": {
            "database": {"status": "healthy"},
            "worker": {"status": "absent"},
            "redis": {"status": "unhealthy", "error": "refused"},
        },
    }
    assert _api_detail(body) == "/health degraded: worker absent, redis unhealthy"
    assert _api_detail({"status": "healthy", "components": {}}) == "/health healthy"
    assert _api_detail("not json") == ""


def test_dashboard_uptime_counts_from_the_process_start() -> None:
    """Streamlit imports the page modules at the first page view, which may come long after
    the process started; the "up" time must count from the process start all the same."""
    script = (
        "import time; time.sleep(2.5)\n"
        "from cesar_dashboard.health import dashboard_health\n"
        "print(dashboard_health().detail)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    match = re.search(r"up (\d+)h(\d+)m(\d+)s", result.stdout)
    assert match, result.stdout
    hours, minutes, seconds = (int(g) for g in match.groups())
    assert hours * 3600 + minutes * 60 + seconds >= 2, result.stdout
