"""What the dashboard shows of a connection target is ``host:port/db`` (``describe_target``),
as the API does: never a user, a password or query parameters, on the sidebar, in the health
checks and in the database errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from cesar_dashboard.health import check_database_and_worker, check_redis
from streamlit.testing.v1 import AppTest

OpenPage = Callable[[str], AppTest]
FAKE_PW = "fake-" + "pw-5531"  # built at runtime: no credential-looking URL in the file


def _shown(at: AppTest) -> list[str]:
    return [re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(e.value)) for e in at.caption]


async def test_sidebar_names_the_database_by_host_port_and_database_only(
    monkeypatch: pytest.MonkeyPatch, dashboard_env: str, open_page: OpenPage
) -> None:
    parts = urlsplit(dashboard_env)
    monkeypatch.setenv(
        "DASHBOARD_DATABASE_URL", f"{dashboard_env}?application_name=cesar-dash&sslmode=disable"
    )
    at = open_page("overview")
    expected = f"{parts.hostname}:{parts.port}{parts.path}"
    reads = [c for c in _shown(at) if c.startswith("Reads")]
    assert reads == [f"Reads (read-only): `{expected}`"], reads


async def test_redis_health_names_host_port_and_database_only(closed_url: str) -> None:
    port = closed_url.rsplit(":", 1)[1]
    health = await check_redis(f"redis://cesar:{FAKE_PW}@127.0.0.1:{port}/0", 2)
    assert health.status == "down"
    assert health.detail.startswith(f"127.0.0.1:{port}/0: "), health.detail
    assert FAKE_PW not in health.detail and "cesar" not in health.detail


async def test_database_errors_name_host_port_and_database_only(closed_url: str) -> None:
    port = closed_url.rsplit(":", 1)[1]
    url = f"postgresql://cesar@127.0.0.1:{port}/x?sslpassword={FAKE_PW}&application_name=dash"
    db, worker = await check_database_and_worker(url, 2)
    assert db.status == "down" and worker.status == "unknown"
    assert f"127.0.0.1:{port}/x" in db.detail, db.detail
    assert "cesar@" not in db.detail and FAKE_PW not in db.detail
    assert "application_name" not in db.detail
