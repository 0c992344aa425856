"""LLM (llm_cache_metrics): cache hit ratio, requests and tokens per model over time."""

from __future__ import annotations

import streamlit as st

from cesar_dashboard import data, ui
from cesar_dashboard.settings import DashboardSettings
from cesar_dashboard.views import charts

__all__ = ["TITLE", "WINDOWS", "render"]

WINDOWS = {"Last 24 hours": 86400.0, "Last 7 days": 7 * 86400.0, "Last 30 days": 30 * 86400.0}


TITLE = "LLM cache"


def _ratio(hits: float, misses: float) -> str:
    total = hits + misses
    return f"{hits / total:.1%}" if total else "—"


def render(cfg: DashboardSettings) -> None:
    url = ui.database_url(cfg)
    if url is None:
        return
    window = st.selectbox("Window", options=list(WINDOWS), index=1, key="llm_window")
    rows = ui.guarded("Database", data.llm_data, url, cfg.db_timeout, WINDOWS[window])
    if rows is None:
        return
    if not rows:
        st.info("No LLM traffic recorded in this window (llm_cache_metrics is empty).")
        return
    df = charts.frame(rows)
    df["tokens"] = df["prompt_tokens"] + df["completion_tokens"]
    hits, misses = float(df["cache_hits"].sum()), float(df["cache_misses"].sum())
    requests = int(df["requests"].sum())
    a, b, c, d, e = st.columns(5)
    a.metric("Requests", requests)
    b.metric("Cache hit ratio", _ratio(hits, misses))
    c.metric("Tokens", int(df["tokens"].sum()))
    d.metric("Errors", int(df["errors"].sum()))
    avg = float(df["total_latency_ms"].sum()) / requests if requests else 0.0
    e.metric("Avg latency", f"{avg:.0f} ms")

    per_model = (
        df.groupby("model", as_index=False)
        .agg(
            requests=("requests", "sum"),
            cache_hits=("cache_hits", "sum"),
            cache_misses=("cache_misses", "sum"),
            prompt_tokens=("prompt_tokens", "sum"),
            completion_tokens=("completion_tokens", "sum"),
            errors=("errors", "sum"),
            total_latency_ms=("total_latency_ms", "sum"),
            max_latency_ms=("max_latency_ms", "max"),
        )
        .sort_values("requests", ascending=False)
    )
    per_model["hit_ratio"] = [
        _ratio(h, m)
        for h, m in zip(per_model["cache_hits"], per_model["cache_misses"], strict=True)
    ]
    per_model["avg_latency_ms"] = (
        per_model["total_latency_ms"] / per_model["requests"].where(per_model["requests"] > 0)
    ).round(1)
    st.subheader("Per model")
    st.dataframe(
        per_model[
            [
                "model",
                "requests",
                "hit_ratio",
                "cache_hits",
                "cache_misses",
                "prompt_tokens",
                "completion_tokens",
                "errors",
                "avg_latency_ms",
                "max_latency_ms",
            ]
        ],
        hide_index=True,
        width="stretch",
    )

    lookups = (df["cache_hits"] + df["cache_misses"]).where(lambda s: s > 0)
    df["hit_ratio"] = (df["cache_hits"] / lookups).round(3)
    left, right = st.columns(2)
    with left:
        st.subheader("Requests per model")
        st.altair_chart(
            charts.time_lines(
                df, x="bucket_start", y="requests", color="model", y_title="requests"
            ),
            width="stretch",
        )
    with right:
        st.subheader("Tokens per model")
        st.altair_chart(
            charts.time_lines(df, x="bucket_start", y="tokens", color="model", y_title="tokens"),
            width="stretch",
        )
    st.subheader("Cache hit ratio over time")
    st.altair_chart(
        charts.time_lines(
            df.dropna(subset=["hit_ratio"]),
            x="bucket_start",
            y="hit_ratio",
            color="model",
            y_title="hit ratio",
        ),
        width="stretch",
    )
