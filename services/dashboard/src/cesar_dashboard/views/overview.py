"""Overview: health of every service, failed-job alert, backlog chart, sync and ingestion."""

from __future__ import annotations

import streamlit as st

from cesar_dashboard import data, ui
from cesar_dashboard.health import HealthReport
from cesar_dashboard.repository import ACTIVE_STATUSES
from cesar_dashboard.settings import DashboardSettings
from cesar_dashboard.views import charts

__all__ = ["LAG_THRESHOLD_SECONDS", "TITLE", "render"]

LAG_THRESHOLD_SECONDS = 300.0


TITLE = "CESAR ops · Overview"


def _health(report: HealthReport) -> None:
    st.subheader("Service health")
    columns = st.columns(len(report.services))
    for column, service in zip(columns, report.services, strict=True):
        with column.container(border=True):
            icon = ui.STATUS_ICONS[service.status]
            st.metric(f"{icon} {service.name}", service.status.upper())
            latency = f" · {service.latency_ms:.1f} ms" if service.latency_ms is not None else ""
            st.caption(f"{ui.plain(service.detail)}{latency}")
    down = [s.name for s in report.services if s.status == "down"]
    degraded = [s.name for s in report.services if s.status in ("degraded", "unknown")]
    if down:
        st.error(f"Unreachable or failing: {', '.join(down)}")
    if degraded:
        st.warning(f"Degraded or unknown: {', '.join(degraded)}")


def _failed_alert(overview: data.OverviewData) -> None:
    count = overview.failed_recent_count
    if count == 0:
        st.success("No jobs failed in the last 15 minutes.")
        return
    st.error(f"**{count} job{'s' if count != 1 else ''} failed in the last 15 minutes**")
    df = charts.frame(overview.failed_recent)
    st.dataframe(
        df[["failed_at", "job_type", "id", "attempts", "last_error"]],
        hide_index=True,
        width="stretch",
    )


def _log_alerts(overview: data.OverviewData) -> None:
    rows = overview.log_alerts
    if not rows:
        st.success("No errors logged by any service in the last 24 hours.")
        return
    critical = sum(1 for r in rows if r["severity"] == "critical")
    text = f"**{len(rows)} error{'s' if len(rows) != 1 else ''} logged in the last 24 hours**"
    (st.error if critical else st.warning)(text + (f" ({critical} critical)" if critical else ""))
    df = charts.frame(rows)
    st.dataframe(
        df[["last_seen_at", "component", "severity", "message", "occurrences"]],
        hide_index=True,
        width="stretch",
    )


def _backlog(overview: data.OverviewData) -> None:
    st.subheader("Job backlog")
    rows = overview.backlog
    if not rows:
        st.info(
            "The job queue is empty: no jobs of any type or status (as of the last view refresh)."
        )
        return
    active = sum(int(r["job_count"]) for r in rows if r["status"] in ACTIVE_STATUSES)
    failed = sum(int(r["job_count"]) for r in rows if r["status"] == "failed")
    oldest = max(
        (float(r["oldest_age_seconds"] or 0) for r in rows if r["status"] in ACTIVE_STATUSES),
        default=None,
    )
    a, b, c = st.columns(3)
    a.metric("Active jobs", active)
    b.metric("Failed jobs", failed)
    c.metric("Oldest active job", ui.fmt_age(oldest))
    st.altair_chart(charts.backlog_chart(rows), width="stretch")
    st.caption(f"From mv_job_queue_backlog, refreshed {ui.fmt_time(rows[0]['refreshed_at'])}")


def _sync_glance(overview: data.OverviewData) -> None:
    st.subheader("Sync lag")
    rows = overview.sync_lag
    if not rows:
        st.info("No external systems are being synced yet.")
        return
    over = [r for r in rows if (r["lag_seconds"] or 0) > LAG_THRESHOLD_SECONDS]
    max_lag = max(
        (float(r["lag_seconds"]) for r in rows if r["lag_seconds"] is not None), default=None
    )
    a, b = st.columns(2)
    a.metric("Systems over 5 min", len(over))
    b.metric("Largest lag", ui.fmt_age(max_lag))
    if over:
        names = ", ".join(
            f"{ui.plain(r['system_name'])} ({ui.fmt_age(r['lag_seconds'])})" for r in over
        )
        st.warning(f"Lagging: {names}")
    else:
        st.success(f"All {len(rows)} systems within 5 minutes.")


def _ingestion_glance(overview: data.OverviewData) -> None:
    st.subheader("Ingestion (24 h)")
    rows = overview.ingestion_errors
    if not rows:
        st.info("No ingestion runs in the last 24 hours.")
        return
    failed_runs = sum(int(r["failed_runs"]) for r in rows)
    rows_failed = sum(int(r["rows_failed"]) for r in rows)
    a, b = st.columns(2)
    a.metric("Failed runs", failed_runs)
    b.metric("Rows failed", rows_failed)
    failing = [ui.plain(r["source"]) for r in rows if int(r["failed_runs"]) > 0]
    if failing:
        st.warning(f"Sources with failures: {', '.join(failing)}")
    else:
        st.success(f"{sum(int(r['runs']) for r in rows)} runs, no failures.")


def render(cfg: DashboardSettings) -> None:
    url = ui.database_url(cfg)
    report = data.health_report(
        url,
        cfg.redis_url.get_secret_value(),
        cfg.api_base,
        cfg.ollama_proxy_base,
        cfg.http_timeout,
        cfg.db_timeout,
    )
    _health(report.with_dashboard())

    st.subheader("Alerts")
    overview = ui.guarded("Database", data.overview_data, url, cfg.db_timeout) if url else None
    if overview is None:
        return
    _failed_alert(overview)
    _log_alerts(overview)
    _backlog(overview)
    left, right = st.columns(2)
    with left:
        _sync_glance(overview)
    with right:
        _ingestion_glance(overview)
