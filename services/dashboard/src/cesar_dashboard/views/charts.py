"""Altair charts built from plain rows; pages decide what to plot, this decides how."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import altair as alt
import pandas as pd

__all__ = [
    "STATUS_COLORS",
    "backlog_chart",
    "frame",
    "lag_bars",
    "lag_history_chart",
    "stacked_bars",
    "time_lines",
    "utc_time_x",
]

STATUS_COLORS = {
    "pending": "#9ca3af",
    "queued": "#60a5fa",
    "running": "#2563eb",
    "retrying": "#f59e0b",
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "cancelled": "#6b7280",
}


# the tables show times as 24-hour UTC (ui.fmt_time); Vega-Lite's default would be the
# browser's local zone on a 12-hour clock without AM/PM
UTC_TIME_FORMAT = "%H:%M"


def utc_time_x(field: str, title: str | None) -> alt.X:
    """An x axis for a time field, in UTC on a 24-hour clock like the tables beside it."""
    return alt.X(
        f"{field}:T",
        title=title,
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format=UTC_TIME_FORMAT, formatType="utc"),
    )


def _x(shorthand: str, title: str) -> alt.X:
    field, _, kind = shorthand.rpartition(":")
    return utc_time_x(field, title) if kind == "T" else alt.X(shorthand, title=title)


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame from rows, with UUIDs as text so Arrow can serialize them."""
    df = pd.DataFrame(rows)
    for column in df.columns:
        sample = df[column].dropna()
        if len(sample) and isinstance(sample.iloc[0], UUID):
            df[column] = df[column].map(lambda v: str(v) if v is not None else None)
    return df


def backlog_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    df = frame(rows)[["job_type", "status", "job_count"]]
    statuses = [s for s in STATUS_COLORS if s in set(df["status"])]
    chart: alt.Chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("job_type:N", title="job type", sort="-x"),
            x=alt.X("sum(job_count):Q", title="jobs"),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=statuses, range=[STATUS_COLORS[s] for s in statuses]),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=["job_type", "status", "job_count"],
        )
    )
    return chart


def lag_bars(df: pd.DataFrame, threshold_seconds: float) -> alt.LayerChart:
    base = alt.Chart(df).encode(y=alt.Y("system_name:N", title="system", sort="-x"))
    bars = base.mark_bar().encode(
        x=alt.X("lag_seconds:Q", title="lag (seconds)"),
        color=alt.condition(
            alt.datum.lag_seconds > threshold_seconds, alt.value("#dc2626"), alt.value("#16a34a")
        ),
        tooltip=["system_name", "status", "lag_seconds"],
    )
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold_seconds]}))
        .mark_rule(strokeDash=[4, 4], color="#f59e0b")
        .encode(x="threshold:Q")
    )
    layered: alt.LayerChart = bars + rule
    return layered


def lag_history_chart(df: pd.DataFrame, threshold_seconds: float) -> alt.LayerChart:
    lines = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=utc_time_x("recorded_at", "time (UTC)"),
            y=alt.Y("lag_seconds:Q", title="lag (seconds)"),
            color=alt.Color("system_name:N", title="system"),
            tooltip=["system_name", "recorded_at", "lag_seconds"],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold_seconds]}))
        .mark_rule(strokeDash=[4, 4], color="#dc2626")
        .encode(y="threshold:Q")
    )
    layered: alt.LayerChart = lines + rule
    return layered


def stacked_bars(
    df: pd.DataFrame, *, x: str, y: str, color: str, x_title: str, y_title: str
) -> alt.Chart:
    chart: alt.Chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=_x(x, x_title),
            y=alt.Y(y, title=y_title),
            color=alt.Color(color),
            tooltip=list(df.columns),
        )
    )
    return chart


def time_lines(df: pd.DataFrame, *, x: str, y: str, color: str, y_title: str) -> alt.Chart:
    chart: alt.Chart = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=utc_time_x(x, "time (UTC)"),
            y=alt.Y(f"{y}:Q", title=y_title),
            color=alt.Color(f"{color}:N"),
            tooltip=[x, color, y],
        )
    )
    return chart
