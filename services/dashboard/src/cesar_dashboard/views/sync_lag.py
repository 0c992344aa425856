"""Sync lag (mv_sync_lag): per system, lag over time, the systems over five minutes highlighted."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from cesar_dashboard import data, ui
from cesar_dashboard.repository import SYNC_LAG_METRIC
from cesar_dashboard.settings import DashboardSettings
from cesar_dashboard.views import charts

__all__ = ["HISTORY_SECONDS", "LAG_THRESHOLD_SECONDS", "TITLE", "render"]

LAG_THRESHOLD_SECONDS = 300.0
HISTORY_SECONDS = 24 * 3600.0
SAMPLES_KEY = "sync_lag_samples"
MAX_SAMPLES = 2000


TITLE = "Sync lag"


def _remember(systems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Samples this session has seen (one per view refresh), for lag over time without history."""
    samples: dict[tuple[str, str], dict[str, Any]] = st.session_state.setdefault(SAMPLES_KEY, {})
    for row in systems:
        if row["lag_seconds"] is None or row["refreshed_at"] is None:
            continue
        key = (str(row["system_name"]), row["refreshed_at"].isoformat())
        samples[key] = {
            "system_name": row["system_name"],
            "recorded_at": row["refreshed_at"],
            "lag_seconds": float(row["lag_seconds"]),
        }
    while len(samples) > MAX_SAMPLES:
        samples.pop(next(iter(samples)))
    return list(samples.values())


def render(cfg: DashboardSettings) -> None:
    url = ui.database_url(cfg)
    if url is None:
        return
    read = ui.guarded("Database", data.sync_lag_data, url, cfg.db_timeout, HISTORY_SECONDS)
    if read is None:
        return
    if not read.systems:
        st.info(
            "No external systems are being synced yet (sync_status is empty, or the view "
            "has not been refreshed since rows arrived)."
        )
        return
    df = charts.frame(read.systems)
    df["over_5_min"] = df["lag_seconds"].fillna(0) > LAG_THRESHOLD_SECONDS
    over = df[df["over_5_min"]]
    a, b, c = st.columns(3)
    a.metric("Systems", len(df))
    b.metric("Over 5 min", len(over))
    c.metric("Largest lag", ui.fmt_age(df["lag_seconds"].max(skipna=True)))
    if len(over):
        st.error(
            "Over five minutes behind: "
            + ", ".join(
                f"{ui.plain(r.system_name)} ({ui.fmt_age(r.lag_seconds)})"
                for r in over.itertuples()
            )
        )
    else:
        st.success("Every system is within five minutes.")
    errors = df[df["last_error"].notna() & (df["last_error"] != "")]
    for row in errors.itertuples():
        # names, statuses and errors come from the sync targets: text, never Markdown
        st.warning(
            f"**{ui.plain(row.system_name)}** ({ui.plain(row.status)}): {ui.plain(row.last_error)}"
        )

    st.subheader("Lag per system")
    st.altair_chart(charts.lag_bars(df, LAG_THRESHOLD_SECONDS), width="stretch")
    shown = df[
        [
            "system_name",
            "status",
            "lag_seconds",
            "over_5_min",
            "last_success_at",
            "last_sync_at",
            "records_synced",
            "last_error",
        ]
    ]
    st.dataframe(
        shown.style.apply(
            lambda row: (
                ["background-color: rgba(220, 38, 38, 0.15)" if row["over_5_min"] else ""]
                * len(row)
            ),
            axis=1,
        ),
        hide_index=True,
        width="stretch",
    )

    st.subheader("Lag over time")
    if read.history:
        history = pd.DataFrame(read.history)
        st.altair_chart(charts.lag_history_chart(history, LAG_THRESHOLD_SECONDS), width="stretch")
        st.caption(f"From system_metrics ({SYNC_LAG_METRIC}), last 24 hours.")
    else:
        samples = _remember(read.systems)
        if len({s["recorded_at"] for s in samples}) > 1:
            st.altair_chart(
                charts.lag_history_chart(pd.DataFrame(samples), LAG_THRESHOLD_SECONDS),
                width="stretch",
            )
            st.caption("Samples seen by this dashboard session (one per view refresh).")
        else:
            st.info(
                f"No lag history recorded yet (system_metrics rows named {SYNC_LAG_METRIC}); "
                "this chart fills in as the views are refreshed while the page is open."
            )
    st.caption(f"From mv_sync_lag, refreshed {ui.fmt_time(read.systems[0]['refreshed_at'])}")
