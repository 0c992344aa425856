"""Agents: live activity from agent_events, agents with their last heartbeat and reputation,
and one agent's A2A conversations and tasks."""

from __future__ import annotations

import streamlit as st

from cesar_dashboard import data, ui
from cesar_dashboard.settings import DashboardSettings
from cesar_dashboard.views import agent_a2a, charts
from cesar_dashboard.views.agent_brain import render_agent_brain

__all__ = ["EVENT_LIMIT", "HEARTBEAT_FRESH_SECONDS", "RATE_SECONDS", "TITLE", "render"]

EVENT_LIMIT = 100
RATE_SECONDS = 3600.0
HEARTBEAT_FRESH_SECONDS = 300.0


TITLE = "Agents"


def render(cfg: DashboardSettings) -> None:
    url = ui.database_url(cfg)
    if url is None:
        return
    read = ui.guarded("Database", data.agents_data, url, cfg.db_timeout, EVENT_LIMIT, RATE_SECONDS)
    if read is None:
        return

    agents = charts.frame(read.agents) if read.agents else None
    events_last_hour = sum(int(r["events"]) for r in read.event_rate)
    a, b, c, d = st.columns(4)
    a.metric("Agents", len(read.agents))
    a_active = 0 if agents is None else int(agents["status"].isin(["active", "busy"]).sum())
    b.metric("Active or busy", a_active)
    fresh = (
        0
        if agents is None
        else int((agents["heartbeat_age_seconds"].fillna(1e18) <= HEARTBEAT_FRESH_SECONDS).sum())
    )
    c.metric("Heartbeat < 5 min", fresh)
    d.metric("Events (last hour)", events_last_hour)

    st.subheader("Live activity")
    if read.event_rate:
        rate = charts.frame(read.event_rate)
        st.altair_chart(
            charts.stacked_bars(
                rate,
                x="minute:T",
                y="events:Q",
                color="severity:N",
                x_title="minute (UTC)",
                y_title="events",
            ),
            width="stretch",
        )
    if not read.events:
        st.info("No agent events yet.")
    else:
        st.dataframe(
            charts.frame(read.events)[
                ["occurred_at", "agent_name", "event_type", "severity", "source", "payload"]
            ],
            hide_index=True,
            width="stretch",
        )

    st.subheader("Agents")
    if agents is None:
        st.info("No agents registered yet.")
        return
    agents["last_heartbeat"] = agents["heartbeat_age_seconds"].map(
        lambda s: "never" if s != s or s is None else f"{ui.fmt_age(s)} ago"
    )
    st.dataframe(
        agents[
            [
                "name",
                "agent_type",
                "status",
                "last_heartbeat",
                "last_heartbeat_at",
                "score",
                "reliability",
                "quality",
                "responsiveness",
                "successes",
                "failures",
            ]
        ],
        hide_index=True,
        width="stretch",
    )
    scored = agents[agents["score"].notna()]
    if len(scored):
        st.subheader("Reputation")
        top = scored.nlargest(30, "score")[["name", "score"]]
        st.altair_chart(
            charts.stacked_bars(
                top, x="score:Q", y="name:N", color="name:N", x_title="score", y_title="agent"
            ),
            width="stretch",
        )
    agent_a2a.render(cfg, url, read.agents)
    render_agent_brain(cfg, url, read.agents)
