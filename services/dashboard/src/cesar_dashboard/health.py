"""The health of every service, measured from the dashboard itself.

- API: ``GET {API_URL}/health`` with a short timeout.
- Database: a fresh connection, its engine and the round trip of ``SELECT 1``.
- Worker: the newest ``worker_heartbeats.last_seen_at`` (read from the database).
- Redis: ``PING``.
- Ollama proxy: ``GET {OLLAMA_PROXY_URL}/livez``.
- Dashboard: this process (it is rendering, so it is up), with its uptime since the process
  started.

Every check turns failure into a :class:`ServiceHealth` with status ``down`` and a reason;
nothing here raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import psutil
import streamlit
from cesar_core.db import parse_engine
from cesar_core.errors import CesarError
from cesar_core.redis import create_redis, ping_redis
from cesar_core.settings import describe_target

from cesar_dashboard import repository
from cesar_dashboard.database import open_connection

__all__ = [
    "WORKER_OK_SECONDS",
    "WORKER_STALE_SECONDS",
    "HealthReport",
    "ServiceHealth",
    "Status",
    "check_all",
]

Status = Literal["ok", "degraded", "down", "unknown"]

WORKER_OK_SECONDS = 60.0
WORKER_STALE_SECONDS = 300.0
# when this process started (cesar-dashboard execs streamlit, so the same process): Streamlit
# imports this module only at the first page view, which may come hours after the start
_PROCESS_STARTED = psutil.Process().create_time()


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    status: Status
    detail: str
    latency_ms: float | None = None


@dataclass(frozen=True)
class HealthReport:
    services: tuple[ServiceHealth, ...]

    def get(self, name: str) -> ServiceHealth:
        return next(s for s in self.services if s.name == name)

    def with_dashboard(self) -> HealthReport:
        """This report plus the dashboard's own line (computed now, never cached)."""
        return HealthReport((*self.services, dashboard_health()))

    @property
    def problems(self) -> tuple[ServiceHealth, ...]:
        return tuple(s for s in self.services if s.status != "ok")


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def check_api(client: httpx.AsyncClient, api_base: str) -> ServiceHealth:
    started = time.perf_counter()
    try:
        response = await client.get(f"{api_base}/health")
    except httpx.HTTPError as exc:
        return ServiceHealth("API", "down", f"unreachable at {api_base}: {_reason(exc)}")
    latency = _ms(started)
    status_text = ""
    body: Any = None
    try:
        body = response.json()
        if isinstance(body, dict):
            status_text = str(body.get("status", ""))
    except ValueError:
        pass
    if response.status_code == 200:
        if status_text == "degraded":
            return ServiceHealth("API", "degraded", _api_detail(body), latency)
        return ServiceHealth("API", "ok", f"/health {status_text or 'ok'}", latency)
    if response.status_code == 503:
        return ServiceHealth("API", "down", _api_detail(body) or "/health: HTTP 503", latency)
    return ServiceHealth("API", "down", f"/health answered HTTP {response.status_code}", latency)


def _api_detail(body: Any) -> str:
    """``/health degraded: worker absent`` from the API's health body (its components)."""
    if not isinstance(body, dict):
        return ""
    components = body.get("components")
    bad = []
    if isinstance(components, dict):
        bad = [
            f"{name} {part.get('status')}"
            for name, part in components.items()
            if isinstance(part, dict) and part.get("status") not in ("healthy", "ok", None)
        ]
    suffix = f": {', '.join(bad)}" if bad else ""
    return f"/health {body.get('status', '')}{suffix}"


async def check_ollama_proxy(client: httpx.AsyncClient, base: str) -> ServiceHealth:
    started = time.perf_counter()
    try:
        response = await client.get(f"{base}/livez")
    except httpx.HTTPError as exc:
        return ServiceHealth("Ollama proxy", "down", f"unreachable at {base}: {_reason(exc)}")
    latency = _ms(started)
    if response.status_code == 200:
        return ServiceHealth("Ollama proxy", "ok", "/livez ok", latency)
    return ServiceHealth(
        "Ollama proxy", "down", f"/livez answered HTTP {response.status_code}", latency
    )


async def check_redis(url: str, timeout: float) -> ServiceHealth:
    client = create_redis(url, timeout=timeout)
    try:
        latency = await ping_redis(client, timeout=timeout)
    except CesarError as exc:
        return ServiceHealth("Redis", "down", f"{describe_target(url)}: {_reason(exc)}")
    finally:
        # closing a client that never connected must not fail the check
        with contextlib.suppress(Exception):
            await client.aclose()
    return ServiceHealth("Redis", "ok", "PONG", latency)


def _worker_health(rows: list[dict[str, Any]]) -> ServiceHealth:
    if not rows:
        return ServiceHealth("Worker", "down", "no worker has ever sent a heartbeat")
    newest = rows[0]
    age = float(newest["age_seconds"])
    alive = sum(1 for r in rows if float(r["age_seconds"]) <= WORKER_OK_SECONDS)
    detail = f"{newest['worker_id']} seen {age:.0f}s ago; {alive} alive"
    if age <= WORKER_OK_SECONDS:
        return ServiceHealth("Worker", "ok", detail)
    if age <= WORKER_STALE_SECONDS:
        return ServiceHealth("Worker", "degraded", f"heartbeat stale: {detail}")
    return ServiceHealth("Worker", "down", f"no recent heartbeat: {detail}")


async def check_database_and_worker(
    url: str, timeout: float
) -> tuple[ServiceHealth, ServiceHealth]:
    try:
        conn = await open_connection(url, timeout)
    except CesarError as exc:
        return (
            ServiceHealth("Database", "down", _reason(exc)),
            ServiceHealth("Worker", "unknown", "needs the database (worker_heartbeats)"),
        )
    try:
        async with asyncio.timeout(timeout):
            engine = parse_engine(await repository.engine_banner(conn))
            started = time.perf_counter()
            await repository.ping(conn)
            latency = _ms(started)
            db = ServiceHealth("Database", "ok", f"{engine.name} {engine.version}", latency)
            try:
                worker = _worker_health(await repository.workers(conn))
            except Exception as exc:  # a missing table must not hide the database's health
                worker = ServiceHealth("Worker", "unknown", f"cannot read heartbeats: {exc}")
            return db, worker
    except Exception as exc:
        return (
            ServiceHealth("Database", "down", f"{describe_target(url)}: {_reason(exc)}"),
            ServiceHealth("Worker", "unknown", "needs the database (worker_heartbeats)"),
        )
    finally:
        try:
            await conn.close(timeout=timeout)
        except Exception:
            conn.terminate()


def dashboard_health() -> ServiceHealth:
    uptime = max(0.0, time.time() - _PROCESS_STARTED)
    minutes, seconds = divmod(int(uptime), 60)
    hours, minutes = divmod(minutes, 60)
    return ServiceHealth(
        "Dashboard",
        "ok",
        f"streamlit {streamlit.__version__}, up {hours}h{minutes:02d}m{seconds:02d}s",
    )


async def _check_all(
    *,
    database_url: str | None,
    redis_url: str,
    api_base: str,
    ollama_proxy_base: str,
    timeout: float,
    db_timeout: float,
) -> HealthReport:
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        api, proxy, redis_health, db_pair = await asyncio.gather(
            check_api(client, api_base),
            check_ollama_proxy(client, ollama_proxy_base),
            check_redis(redis_url, timeout),
            check_database_and_worker(database_url, db_timeout) if database_url else _no_database(),
        )
    db, worker = db_pair
    return HealthReport((api, db, redis_health, worker, proxy))


async def _no_database() -> tuple[ServiceHealth, ServiceHealth]:
    return (
        ServiceHealth("Database", "unknown", "no database URL configured"),
        ServiceHealth("Worker", "unknown", "needs the database (worker_heartbeats)"),
    )


def check_all(
    *,
    database_url: str | None,
    redis_url: str,
    api_base: str,
    ollama_proxy_base: str,
    timeout: float,
    db_timeout: float,
) -> HealthReport:
    """Check every service concurrently; returns in about ``max(timeout, db_timeout)``."""
    return asyncio.run(
        _check_all(
            database_url=database_url,
            redis_url=redis_url,
            api_base=api_base,
            ollama_proxy_base=ollama_proxy_base,
            timeout=timeout,
            db_timeout=db_timeout,
        )
    )
