"""The optional login (DASHBOARD_PASSWORD / DASHBOARD_PASSWORD_FILE): nothing is read or done
before it, the password is compared in constant time, and production refuses to run a
dashboard that can act (API_KEY) without one unless told so explicitly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cesar_core.errors import ConfigurationError
from cesar_dashboard import cli, login
from cesar_dashboard.settings import load_dashboard_settings
from pydantic import SecretStr
from streamlit.testing.v1 import AppTest

OpenPage = Callable[[str], AppTest]
APP_PATH = Path(login.__file__).parent / "app.py"
PASSWORD = "test-only-dashboard-password"


def locked(at: AppTest) -> bool:
    """Only the login form: no page title, no sidebar controls, no action buttons."""
    assert not at.exception, [e.value for e in at.exception]
    labels = [b.label for b in at.button]
    return (
        [t.label for t in at.text_input] == ["Password"]
        and "Refresh now" not in labels
        and not at.subheader
        and not at.metric
    )


def log_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="login_password").input(password)
    next(b for b in at.button if b.label == "Log in").click()
    return at.run()


@pytest.fixture
def protected(monkeypatch: pytest.MonkeyPatch, dashboard_env: str) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)


@pytest.mark.usefixtures("protected")
def test_no_page_or_action_before_the_password() -> None:
    at = AppTest.from_file(APP_PATH, default_timeout=60).run()
    assert locked(at)
    at.switch_page("app_pages/jobs.py").run()  # a deep link is no way round
    assert locked(at)
    assert "Wrong password." in [e.value for e in log_in(at, "guess").error]
    assert locked(at)
    at = log_in(at, PASSWORD)
    assert not locked(at)
    assert "Jobs" in [t.value for t in at.title]  # the page the deep link asked for
    assert "Refresh now" in [b.label for b in at.button]
    next(b for b in at.button if b.label == "Log out").click()
    assert locked(at.run())


def test_the_password_may_come_from_a_file(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: str, tmp_path: Path
) -> None:
    secret = tmp_path / "dashboard_password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("DASHBOARD_PASSWORD_FILE", str(secret))
    at = AppTest.from_file(APP_PATH, default_timeout=60).run()
    assert locked(at)
    assert not locked(log_in(at, PASSWORD))


def test_without_a_password_there_is_no_login(dashboard_env: str, open_page: OpenPage) -> None:
    at = open_page("overview")
    assert "Service health" in [s.value for s in at.subheader]
    assert not at.text_input


def test_the_password_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(login.hmac, "compare_digest", spy)
    assert login.password_matches(PASSWORD, SecretStr(PASSWORD))
    assert not login.password_matches("nope", SecretStr(PASSWORD))
    assert calls == [(PASSWORD.encode(), PASSWORD.encode()), (b"nope", PASSWORD.encode())]


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "COCKROACH_DB_URL", "DASHBOARD_DATABASE_URL", "API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("DASHBOARD_PASSWORD", "DASHBOARD_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("API_KEY", "k" * 43)


@pytest.mark.usefixtures("production")
def test_production_refuses_a_dashboard_that_acts_without_a_login(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigurationError, match="DASHBOARD_PASSWORD"):
        load_dashboard_settings()
    with pytest.raises(SystemExit) as exited:
        cli.main(["--server.port", "1"])
    assert exited.value.code == 2
    assert "ALLOW_UNAUTHENTICATED_DASHBOARD" in capsys.readouterr().err

    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    assert load_dashboard_settings().dashboard_password is not None
    monkeypatch.delenv("DASHBOARD_PASSWORD")
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED_DASHBOARD", "true")
    assert load_dashboard_settings().dashboard_password is None
    monkeypatch.delenv("ALLOW_UNAUTHENTICATED_DASHBOARD")
    monkeypatch.delenv("API_KEY")  # a dashboard that only reads may go without
    assert load_dashboard_settings().api_key is None
