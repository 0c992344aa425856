"""``make verify`` / ``cesar-verify``: the operators' checklist against a running stack.

One line per check, with a mark, and for each failure what to do next. Exit 0 only when every
check passes. It works against compose (run inside the stack's network, see the Makefile) or
a local ``make dev`` stack, from the same settings the services read.

The sample workflow needs a write key. With ``API_KEY`` unset (a fresh stack), it mints a
temporary key through the database access the checks already use, and revokes it afterwards,
so verifying never needs a manual step.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import Field, SecretStr

from cesar_core import apikeys
from cesar_core.db import connect, detect_engine
from cesar_core.errors import CesarError
from cesar_core.migrations import MATERIALIZED_VIEWS, MIN_TABLE_COUNT, Migrator
from cesar_core.migrations.files import default_migrations_dir
from cesar_core.settings import CoreSettings, load_settings
from cesar_core.settings import _looks_placeholder as looks_placeholder

__all__ = ["Check", "StackCheckSettings", "main", "run_checks"]

SAMPLE_TEMPLATE = "cesar-verify-sample"
SAMPLE_DEFINITION = {
    "steps": [
        {"name": "announce", "kind": "agent.event", "event_type": "verify.sample"},
        {"name": "settle", "kind": "delay", "seconds": 0},
    ]
}
_FAILED_RECENTLY = (
    "SELECT count(*) FROM job_queue "
    "WHERE status = 'failed' AND finished_at > now() - INTERVAL '15 minutes'"
)
# ERROR/CRITICAL log records, recorded by every service (cesar_core.alerts)
_CRITICAL_RECENTLY = (
    "SELECT component, message, occurrences FROM system_alerts "
    "WHERE severity = 'critical' AND status <> 'resolved' "
    "AND last_seen_at > now() - INTERVAL '15 minutes' ORDER BY last_seen_at DESC LIMIT 3"
)
_ERRORS_RECENTLY = (
    "SELECT count(*) FROM system_alerts WHERE severity = 'error' AND status <> 'resolved' "
    "AND last_seen_at > now() - INTERVAL '15 minutes'"
)
_NEWEST_WORKER = "SELECT EXTRACT(EPOCH FROM (now() - max(last_seen_at))) FROM worker_heartbeats"


class StackCheckSettings(CoreSettings):
    api_url: str = Field(default="http://localhost:8000", validation_alias="API_URL")
    api_key: SecretStr | None = Field(default=None, validation_alias="API_KEY")
    ollama_proxy_url: str = Field(
        default="http://localhost:11435", validation_alias="OLLAMA_PROXY_URL"
    )
    dashboard_url: str = Field(default="http://localhost:3000", validation_alias="DASHBOARD_URL")
    verify_timeout: float = Field(default=60.0, gt=0, validation_alias="VERIFY_TIMEOUT")
    worker_stale_seconds: float = Field(default=60.0, gt=0, validation_alias="WORKER_STALE_SECONDS")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""

    def line(self) -> str:
        text = f"{'✓' if self.ok else '✗'} {self.name}: {self.detail}"
        return text if self.ok or not self.hint else f"{text}\n    → {self.hint}"


class _Failed(Exception):
    def __init__(self, detail: str, hint: str) -> None:
        super().__init__(detail)
        self.detail, self.hint = detail, hint


async def _database(s: StackCheckSettings) -> list[Check]:
    url = s.require_database_url()
    try:
        conn = await connect(url, timeout=5)
    except CesarError as exc:
        hint = "is the database up? `docker compose ps cockroach`; check COCKROACH_DB_URL"
        return [Check("database connection", False, str(exc), hint)]
    try:
        engine = await detect_engine(conn)
        checks = [Check("database connection", True, f"{engine.name} {engine.version}")]
        result = await Migrator(conn, engine, default_migrations_dir(), url).verify()
        apply_hint = "run `cesar-migrate apply` (compose: `docker compose up migrator`)"
        checks.append(
            Check(
                "tables",
                result.table_count >= MIN_TABLE_COUNT,
                f"{result.table_count} (need {MIN_TABLE_COUNT}+)",
                apply_hint,
            )
        )
        views = [v for v, count in result.views.items() if count is not None]
        checks.append(
            Check(
                "materialized views",
                len(views) == len(MATERIALIZED_VIEWS),
                f"{len(views)}/{len(MATERIALIZED_VIEWS)} ({', '.join(views) or 'none'})",
                apply_hint,
            )
        )
        checks.append(await _worker_alive(conn, s))
        failed = await conn.fetchval(_FAILED_RECENTLY)
        checks.append(
            Check(
                "failed jobs (15 min)",
                failed == 0,
                f"{failed}",
                "look at the dashboard's Jobs page or GET /api/v1/jobs?status=failed",
            )
        )
        checks.append(await _critical_alerts(conn))
        return checks
    finally:
        await conn.close()


async def _critical_alerts(conn: Any) -> Check:
    """No CRITICAL log record in 15 minutes; ERROR ones are counted, not failed on."""
    name = "critical log errors (15 min)"
    critical = await conn.fetch(_CRITICAL_RECENTLY)
    errors = await conn.fetchval(_ERRORS_RECENTLY)
    others = f"; {errors} error alert(s), see the dashboard's Overview" if errors else ""
    if not critical:
        return Check(name, True, f"none{others}")
    named = "; ".join(
        f"{r['component']}: {str(r['message'])[:160]} (x{r['occurrences']})" for r in critical
    )
    hint = "read that service's logs; SELECT * FROM system_alerts ORDER BY last_seen_at DESC"
    return Check(name, False, named, hint)


async def _worker_alive(conn: Any, s: StackCheckSettings) -> Check:
    age = await conn.fetchval(_NEWEST_WORKER)
    hint = "start the worker (`docker compose up -d worker`) and read its logs"
    if age is None:
        return Check("worker alive", False, "no worker has ever reported", hint)
    ok = float(age) <= s.worker_stale_seconds
    return Check("worker alive", ok, f"last heartbeat {float(age):.0f}s ago", hint)


async def _http(name: str, url: str, hint: str, accept: Callable[[httpx.Response], str]) -> Check:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(url)
        return Check(name, True, accept(response))
    except _Failed as exc:
        return Check(name, False, exc.detail, exc.hint or hint)
    except httpx.HTTPError as exc:
        return Check(name, False, f"{url}: {exc or type(exc).__name__}", hint)


def _status_ok(response: httpx.Response) -> str:
    if response.status_code != 200:
        raise _Failed(f"{response.url} answered {response.status_code}", "")
    return f"{response.url} 200"


def _healthy(response: httpx.Response) -> str:
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    status = body.get("status", f"HTTP {response.status_code}")
    if status != "healthy":
        down = [n for n, c in body.get("components", {}).items() if c.get("status") != "healthy"]
        raise _Failed(f"{status} ({', '.join(down) or 'no detail'})", "see GET /health")
    return "healthy"


@asynccontextmanager
async def _api_key(s: StackCheckSettings) -> AsyncIterator[str]:
    """``API_KEY`` when set to a real key; otherwise (unset, empty, or the placeholder of
    .env.example) a key minted for this run and revoked after it."""
    given = s.api_key.get_secret_value().strip() if s.api_key is not None else ""
    if given and not looks_placeholder(given):
        yield given
        return
    name = f"cesar-verify-{secrets.token_hex(6)}"
    secret = apikeys.generate_key()
    conn = await connect(s.require_database_url(), timeout=5)
    try:
        await apikeys.put_key(conn, name, secret, ["read", "write"])
        try:
            yield secret
        finally:
            await apikeys.revoke(conn, name)
    finally:
        await conn.close()


async def _sample_workflow(s: StackCheckSettings) -> Check:
    name = "sample workflow"
    try:
        async with _api_key(s) as key:
            return await _run_sample(s, key)
    except CesarError as exc:
        hint = "set API_KEY (`uv run cesar-api-keys create verify`) or check the database URL"
        return Check(name, False, f"no API key: {exc}", hint)


async def _run_sample(s: StackCheckSettings, key: str) -> Check:
    name = "sample workflow"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=s.api_url, headers=headers, timeout=10) as api:
            template_id = await _sample_template(api)
            started = time.monotonic()
            executed = await api.post(f"/api/v1/workflows/templates/{template_id}/execute", json={})
            _expect(executed, 202)
            job_id = executed.json()["job"]["id"]
            status = await _wait_final(api, job_id, s.verify_timeout)
    except _Failed as exc:
        return Check(name, False, exc.detail, exc.hint)
    except httpx.HTTPError as exc:
        return Check(name, False, f"API unreachable: {exc}", "check API_URL and the api service")
    elapsed = time.monotonic() - started
    hint = f"GET /api/v1/jobs/{job_id} shows its last_error; is the worker running?"
    return Check(name, status == "succeeded", f"job {job_id} {status} in {elapsed:.1f}s", hint)


async def _sample_template(api: httpx.AsyncClient) -> str:
    found = await api.get("/api/v1/workflows/templates", params={"name": SAMPLE_TEMPLATE})
    _expect(found, 200)
    if items := found.json()["items"]:
        return str(items[0]["id"])
    created = await api.post(
        "/api/v1/workflows/templates",
        json={
            "name": SAMPLE_TEMPLATE,
            "description": "make verify",
            "definition": SAMPLE_DEFINITION,
        },
    )
    _expect(created, 201)
    return str(created.json()["id"])


async def _wait_final(api: httpx.AsyncClient, job_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        response = await api.get(f"/api/v1/jobs/{job_id}")
        _expect(response, 200)
        status = str(response.json()["status"])
        if status in ("succeeded", "failed", "cancelled"):
            return status
        await asyncio.sleep(0.5)
    return f"still {status} after {timeout:g}s"


def _expect(response: httpx.Response, code: int) -> None:
    if response.status_code != code:
        hint = "check API_KEY" if response.status_code in (401, 403) else "read the api logs"
        raise _Failed(
            f"{response.request.method} {response.url.path}: {response.status_code} {response.text[:200]}",
            hint,
        )


async def run_checks(s: StackCheckSettings) -> list[Check]:
    probes: list[Awaitable[Check | list[Check]]] = [
        _database(s),
        _http(
            "Ollama via proxy",
            f"{s.ollama_proxy_url}/api/version",
            "is ollama-proxy up, and ollama behind it? `docker compose logs ollama-proxy`",
            _status_ok,
        ),
        _http("API /health", f"{s.api_url}/health", "is the api up? check API_URL", _healthy),
        _http(
            "dashboard",
            f"{s.dashboard_url}/_stcore/health",
            "is the dashboard up? `docker compose logs dashboard`",
            _status_ok,
        ),
    ]
    results: list[Check] = []
    for item in await asyncio.gather(*probes):
        results.extend(item if isinstance(item, list) else [item])
    results.append(await _sample_workflow(s))
    return results


def main() -> int:
    try:
        settings = load_settings(StackCheckSettings)
        checks = asyncio.run(run_checks(settings))
    except CesarError as exc:
        print(f"cesar-verify: error: {exc}", file=sys.stderr)
        return 2
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
