"""What each page reads, as cached functions returning plain data.

Each function opens one short-lived read-only connection inside ``asyncio.run`` (see
:mod:`cesar_dashboard.database`) and returns lists of dicts or small dataclasses. Results are
cached with ``st.cache_data(ttl=...)`` keyed on the arguments; a failure raises
:class:`~cesar_dashboard.errors.DatabaseUnreachable` and is never cached, so the page recovers
as soon as the database does. No pool or connection is ever cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import streamlit as st

from cesar_dashboard import health, repository
from cesar_dashboard.database import read
from cesar_dashboard.repository import JobFilter

__all__ = [
    "CACHE_TTL_SECONDS",
    "FAILED_WINDOW_SECONDS",
    "AgentsData",
    "IngestionData",
    "JobsData",
    "OverviewData",
    "SyncLagData",
    "agents_data",
    "clear_caches",
    "health_report",
    "ingestion_data",
    "job_detail",
    "job_ids_for_action",
    "jobs_data",
    "llm_data",
    "overview_data",
    "sync_lag_data",
]

Row = dict[str, Any]
CACHE_TTL_SECONDS = 5
FAILED_WINDOW_SECONDS = 15 * 60.0
LOG_ALERTS_WINDOW_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class OverviewData:
    failed_recent_count: int
    failed_recent: list[Row]
    backlog: list[Row]
    sync_lag: list[Row]
    ingestion_errors: list[Row]
    log_alerts: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class JobsData:
    job_types: list[str]
    jobs: list[Row]
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.status_counts.values())


@dataclass(frozen=True)
class SyncLagData:
    systems: list[Row]
    history: list[Row]


@dataclass(frozen=True)
class IngestionData:
    per_source: list[Row]
    failures: list[Row]


@dataclass(frozen=True)
class AgentsData:
    agents: list[Row]
    events: list[Row]
    event_rate: list[Row]


def clear_caches() -> None:
    st.cache_data.clear()


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def health_report(
    database_url: str | None,
    redis_url: str,
    api_base: str,
    ollama_proxy_base: str,
    timeout: float,
    db_timeout: float,
) -> health.HealthReport:
    return health.check_all(
        database_url=database_url,
        redis_url=redis_url,
        api_base=api_base,
        ollama_proxy_base=ollama_proxy_base,
        timeout=timeout,
        db_timeout=db_timeout,
    )


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def overview_data(url: str, timeout: float) -> OverviewData:
    async def batch(conn: asyncpg.Connection) -> OverviewData:
        count, failed = await repository.failed_jobs_recent(conn, FAILED_WINDOW_SECONDS)
        return OverviewData(
            failed_recent_count=count,
            failed_recent=failed,
            backlog=await repository.backlog(conn),
            sync_lag=await repository.sync_lag(conn),
            ingestion_errors=await repository.ingestion_errors(conn),
            log_alerts=await repository.recent_alerts(conn, LOG_ALERTS_WINDOW_SECONDS),
        )

    return read(url, timeout, batch)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def jobs_data(url: str, timeout: float, flt: JobFilter, limit: int) -> JobsData:
    async def batch(conn: asyncpg.Connection) -> JobsData:
        return JobsData(
            job_types=await repository.job_types(conn),
            jobs=await repository.jobs(conn, flt, limit),
            status_counts=await repository.job_status_counts(conn, flt),
        )

    return read(url, timeout, batch)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def job_detail(url: str, timeout: float, job_id: str) -> Row | None:
    async def batch(conn: asyncpg.Connection) -> Row | None:
        return await repository.job(conn, UUID(job_id))

    return read(url, timeout, batch)


def job_ids_for_action(
    url: str, timeout: float, flt: JobFilter, statuses: tuple[str, ...], limit: int
) -> list[UUID]:
    """Fresh (uncached) ids of the filtered jobs an action applies to."""

    async def batch(conn: asyncpg.Connection) -> list[UUID]:
        return await repository.job_ids(conn, flt, statuses, limit)

    return read(url, timeout, batch)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def sync_lag_data(url: str, timeout: float, history_seconds: float) -> SyncLagData:
    async def batch(conn: asyncpg.Connection) -> SyncLagData:
        return SyncLagData(
            systems=await repository.sync_lag(conn),
            history=await repository.sync_lag_history(conn, history_seconds),
        )

    return read(url, timeout, batch)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def ingestion_data(url: str, timeout: float, limit: int) -> IngestionData:
    async def batch(conn: asyncpg.Connection) -> IngestionData:
        return IngestionData(
            per_source=await repository.ingestion_errors(conn),
            failures=await repository.ingestion_failures(conn, limit),
        )

    return read(url, timeout, batch)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def agents_data(url: str, timeout: float, event_limit: int, rate_seconds: float) -> AgentsData:
    async def batch(conn: asyncpg.Connection) -> AgentsData:
        return AgentsData(
            agents=await repository.agents(conn),
            events=await repository.agent_events(conn, event_limit),
            event_rate=await repository.agent_event_rate(conn, rate_seconds),
        )

    return read(url, timeout, batch)


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def llm_data(url: str, timeout: float, window_seconds: float) -> list[Row]:
    async def batch(conn: asyncpg.Connection) -> list[Row]:
        return await repository.llm_metrics(conn, window_seconds)

    return read(url, timeout, batch)
