"""The whole path, through real processes: API -> job_queue -> arq -> worker -> proxy -> fake
Ollama, events on the WebSocket, the views, the dashboard in a browser, and `make verify`."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import FAKE_MODEL, Stack
from tests.e2e.helpers import EventListener, create_template, execute, query, wait_final
from tests.e2e.processes import VENV_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def test_workflow_runs_through_the_whole_stack(stack: Stack) -> None:
    steps = [
        {
            "name": "ask",
            "kind": "llm.generate",
            "model": FAKE_MODEL,
            "prompt": "Say hello",
            "options": {"temperature": 0},
        },
        {
            "name": "tell",
            "kind": "agent.event",
            "event_type": "e2e.workflow",
            "payload": {"from": "e2e"},
        },
    ]
    with stack.api() as api, EventListener(stack.api_url, event_type="e2e.workflow") as events:
        template_id = create_template(api, steps)
        started = execute(api, template_id, input={"topic": "e2e"})
        job_id = started["job"]["id"]
        job = wait_final(api, job_id)
        assert job["status"] == "succeeded", (job, stack.logs())
        assert job["attempts"] == 1

        event = events.wait_for("e2e.workflow")
        assert event["payload"]["from"] == "e2e"

        execution = api.get(f"/api/v1/workflows/executions/{started['execution']['id']}").json()
        assert execution["status"] == "succeeded"
        assert execution["progress"]["completed_steps"] == 2
        assert "ask" in str(execution["output"])

        row = query(
            stack.database_url,
            "SELECT status, attempts, finished_at, dispatch_token FROM job_queue WHERE id = $1::uuid",
            job_id,
        )[0]
        assert row["status"] == "succeeded" and row["finished_at"] is not None

        assert api.post("/api/v1/monitoring/refresh").status_code == 200
        backlog = api.get("/api/v1/monitoring/job-backlog").json()
        rows = [r for r in backlog["items"] if r["job_type"] == "workflow.execute"]
        assert any(r["status"] == "succeeded" and r["job_count"] >= 1 for r in rows), backlog

    # the LLM step went through the proxy: its metrics counted an answered generate for the model
    metrics = httpx.get(f"{stack.proxy_url}/metrics").text
    generated = [
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "ollama_proxy_requests_total"
        and sample.labels == {"route": "generate", "model": FAKE_MODEL, "outcome": "ok"}
    ]
    assert generated and generated[0] >= 1, metrics


def test_make_verify_passes_against_the_stack(stack: Stack) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "verify"],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✗" not in result.stdout
    for item in (
        "database connection",
        "tables",
        "materialized views",
        "Ollama via proxy",
        "API /health",
        "worker alive",
        "dashboard",
        "failed jobs",
        "critical log errors",
        "sample workflow",
    ):
        assert item in result.stdout


def test_verify_names_what_is_wrong(stack: Stack) -> None:
    env = {**stack.env, "OLLAMA_PROXY_URL": "http://127.0.0.1:9", "API_KEY": "not-a-key"}
    result = subprocess.run(
        [str(VENV_BIN / "cesar-verify")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "✗ Ollama via proxy" in result.stdout
    assert "✗ sample workflow" in result.stdout and "API_KEY" in result.stdout


def test_verify_needs_no_api_key_and_revokes_the_one_it_mints(stack: Stack) -> None:
    """A fresh stack has no key: verify mints one through the database and revokes it."""
    for env in (
        {k: v for k, v in stack.env.items() if k != "API_KEY"},
        {**stack.env, "API_KEY": "changeme-api-key"},  # the placeholder of an old .env
    ):
        result = subprocess.run(
            [str(VENV_BIN / "cesar-verify")], env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "✓ sample workflow" in result.stdout
    keys = query(
        stack.database_url,
        "SELECT count(*) FILTER (WHERE revoked_at IS NULL) AS active, count(*) AS minted "
        "FROM api_keys WHERE name LIKE 'cesar-verify-%'",
    )[0]
    assert (keys["active"], keys["minted"]) == (0, 2)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (scripts/install-system-deps.sh installs it)",
)
def test_dashboard_shows_the_jobs_in_a_browser(stack: Stack) -> None:
    # playwright is a declared dev dependency: a broken install fails here, it is not skipped
    import playwright.async_api as playwright_api

    chromium = CHROMIUM
    ARTIFACTS.mkdir(exist_ok=True)

    async def look() -> str:
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=str(chromium),
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                await page.goto(f"{stack.dashboard_url}/jobs")
                await page.get_by_text("Matching jobs").wait_for(timeout=60_000)
                await page.get_by_text("succeeded:", exact=False).first.wait_for(timeout=60_000)
                assert await page.locator('[data-testid="stException"]').count() == 0
                await page.screenshot(
                    path=str(ARTIFACTS / "e2e-dashboard-jobs.png"), full_page=True
                )
                return str(await page.locator("body").inner_text())
            finally:
                await browser.close()

    body = asyncio.run(look())
    assert "succeeded:" in body
    assert "workflow.execute" in body
