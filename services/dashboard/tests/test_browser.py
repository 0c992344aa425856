"""A real browser: headless Chromium (Debian's package) loads the running dashboard.

The dashboard runs as a real process (the same argv as the ``cesar-dashboard`` console script)
against a migrated database holding some rows. The test waits until the overview's real text
has rendered (a bare ``chromium --screenshot`` only catches Streamlit's loading skeleton),
checks that no exception block is on the page, and saves a screenshot to
``test-artifacts/dashboard-overview.png``. With ``UPDATE_DOCS_SCREENSHOT=1`` it also writes the
README's ``docs/screenshots/overview.png``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cesar_dashboard.cli import command

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts"
DOCS_SCREENSHOT = REPO / "docs" / "screenshots" / "overview.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

ROWS = """
INSERT INTO job_queue (job_type, payload, status, attempts, last_error, created_at, updated_at,
                       finished_at)
VALUES
 ('ingest.financial', '{"symbol": "AAPL"}', 'failed', 5, 'upstream answered HTTP 429',
  now() - INTERVAL '20 minutes', now() - INTERVAL '2 minutes', now() - INTERVAL '2 minutes'),
 ('ingest.financial', '{"symbol": "MSFT"}', 'pending', 0, NULL, now(), now(), NULL),
 ('ingest.financial', '{"symbol": "NVDA"}', 'pending', 0, NULL, now(), now(), NULL),
 ('workflow.execute', '{}', 'running', 1, NULL, now(), now(), NULL),
 ('workflow.execute', '{}', 'succeeded', 1, NULL, now(), now(), now()),
 ('workflow.execute', '{}', 'succeeded', 1, NULL, now(), now(), now()),
 ('sync.supabase', '{}', 'succeeded', 1, NULL, now(), now(), now()),
 ('maintenance.refresh_views', '{}', 'queued', 0, NULL, now(), now(), NULL);
INSERT INTO sync_status (system_name, last_sync_at, last_success_at, status)
VALUES ('supabase', now(), now() - INTERVAL '9 minutes', 'lagging'),
       ('email', now(), now() - INTERVAL '40 seconds', 'ok');
INSERT INTO ingestion_log (source, status, rows_total, rows_ok, rows_failed, error_message,
                           started_at, finished_at)
VALUES ('yahoo', 'failed', 10, 0, 10, 'HTTP 429', now() - INTERVAL '1 hour', now()),
       ('yahoo', 'succeeded', 10, 10, 0, NULL, now() - INTERVAL '2 hours', now()),
       ('imap', 'succeeded', 5, 5, 0, NULL, now() - INTERVAL '3 hours', now());
INSERT INTO worker_heartbeats (worker_id, hostname) VALUES ('worker-1', 'ops-1')
"""

PAGES = [
    ("jobs", "Matching jobs"),
    ("sync-lag", "Lag per system"),
    ("ingestion", "Latest failures"),
    ("agents", "No agents registered yet."),
    ("llm", "No LLM traffic recorded in this window"),
]


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def running_dashboard(
    database_url: str,
    redis_url: str,
    closed_url: str,
    seed: Callable[..., Any],
    unused_port: Callable[[], int],
    tmp_path: Path,
) -> AsyncIterator[str]:
    await seed(ROWS)
    port = unused_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "COCKROACH_DB_URL", "API_KEY", "ENVIRONMENT")
    }
    env.update(
        DASHBOARD_DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        API_URL=os.environ.get("SCREENSHOT_API_URL", closed_url),
        OLLAMA_PROXY_URL=os.environ.get("SCREENSHOT_OLLAMA_PROXY_URL", closed_url),
        REFRESH_SECONDS="0",
        HOME=str(tmp_path),  # streamlit writes ~/.streamlit
    )
    argv = command(["--server.port", str(port), "--server.address", "127.0.0.1"])
    log_path = tmp_path / "dashboard.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(240):
                if proc.returncode is not None:
                    break
                try:
                    if (await client.get(f"{url}/_stcore/health")).text == "ok":
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)
            else:
                pytest.fail(f"dashboard not healthy within 60 s: {log_path.read_text()}")
        if proc.returncode is not None:
            pytest.fail(f"dashboard exited: {log_path.read_text()}")
        yield url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# decided before any fixture runs, so a machine without Chromium never starts Streamlit
@pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium found (/usr/bin/chromium); install Debian's `chromium` package "
    "(scripts/install-system-deps.sh does)",
)
async def test_overview_renders_in_a_real_browser(running_dashboard: str) -> None:
    chromium = find_chromium()
    assert chromium is not None
    # playwright is a declared dev dependency: a broken install fails here, it is not skipped
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1100})
            await page.goto(running_dashboard, wait_until="domcontentloaded")
            # real content, not the skeleton: text that only the rendered overview has
            await page.get_by_text("Service health").wait_for(timeout=60_000)
            await page.get_by_text("1 job failed in the last 15 minutes").wait_for(timeout=60_000)
            await page.get_by_text("Lagging: supabase").wait_for(timeout=60_000)
            await page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
            await page.wait_for_timeout(500)  # let the chart finish drawing
            assert await page.locator('[data-testid="stException"]').count() == 0
            body = await page.locator("body").inner_text()
            assert "Traceback" not in body
            assert "CESAR ops · Overview" in body
            await page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)
            if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
                # Streamlit scrolls inside its own container: a taller window shows it all
                await page.set_viewport_size({"width": 1440, "height": 1650})
                await page.wait_for_timeout(1500)
                DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(DOCS_SCREENSHOT))
            # every other page renders real content without an exception too
            for path, text in PAGES:
                await page.goto(f"{running_dashboard}/{path}", wait_until="domcontentloaded")
                await page.get_by_text(text).first.wait_for(timeout=60_000)
                await page.wait_for_timeout(300)
                assert await page.locator('[data-testid="stException"]').count() == 0, path
        finally:
            await browser.close()
    assert (ARTIFACTS / "dashboard-overview.png").stat().st_size > 10_000
