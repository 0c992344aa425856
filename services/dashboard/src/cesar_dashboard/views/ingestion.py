"""Ingestion (mv_ingestion_errors, ingestion_log): errors per source, the latest failures."""

from __future__ import annotations

import streamlit as st

from cesar_dashboard import data, ui
from cesar_dashboard.settings import DashboardSettings
from cesar_dashboard.views import charts

__all__ = ["FAILURE_LIMIT", "TITLE", "render"]

FAILURE_LIMIT = 50


TITLE = "Ingestion"


def render(cfg: DashboardSettings) -> None:
    url = ui.database_url(cfg)
    if url is None:
        return
    read = ui.guarded("Database", data.ingestion_data, url, cfg.db_timeout, FAILURE_LIMIT)
    if read is None:
        return

    st.subheader("Errors per source (last 24 h)")
    if not read.per_source:
        st.info("No ingestion runs in the last 24 hours (as of the last view refresh).")
    else:
        per_source = charts.frame(read.per_source)
        a, b, c, d = st.columns(4)
        a.metric("Runs", int(per_source["runs"].sum()))
        b.metric("Failed runs", int(per_source["failed_runs"].sum()))
        c.metric("Partial runs", int(per_source["partial_runs"].sum()))
        d.metric("Rows failed", int(per_source["rows_failed"].sum()))
        long = per_source.melt(
            id_vars=["source"],
            value_vars=["failed_runs", "partial_runs"],
            var_name="kind",
            value_name="count",
        )
        if int(long["count"].sum()) > 0:
            st.altair_chart(
                charts.stacked_bars(
                    long,
                    x="count:Q",
                    y="source:N",
                    color="kind:N",
                    x_title="runs",
                    y_title="source",
                ),
                width="stretch",
            )
        else:
            st.success("Every run in the last 24 hours succeeded.")
        st.dataframe(
            per_source[
                [
                    "source",
                    "runs",
                    "failed_runs",
                    "partial_runs",
                    "rows_failed",
                    "last_failure_at",
                    "last_run_at",
                ]
            ],
            hide_index=True,
            width="stretch",
        )
        st.caption(
            f"From mv_ingestion_errors, refreshed {ui.fmt_time(read.per_source[0]['refreshed_at'])}"
        )

    st.subheader("Latest failures")
    if not read.failures:
        st.info("No failed or partial ingestion runs on record.")
        return
    failures = charts.frame(read.failures)
    st.dataframe(
        failures[
            [
                "started_at",
                "source",
                "status",
                "error_message",
                "rows_total",
                "rows_failed",
                "errors",
                "job_id",
            ]
        ],
        hide_index=True,
        width="stretch",
    )
    latest = read.failures[0]
    st.error(
        f"Latest: **{ui.plain(latest['source'])}** {ui.plain(latest['status'])} at "
        f"{ui.fmt_time(latest['started_at'])} — {ui.plain(latest['error_message'] or 'no message')}"
    )
