"""The Agents page's A2A section: one agent's conversations and tasks."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cesar_dashboard import a2a, ui
from cesar_dashboard.settings import DashboardSettings
from cesar_dashboard.views import charts

__all__ = ["LIMIT", "render"]

LIMIT = 100


def render(cfg: DashboardSettings, url: str, agents: list[dict[str, Any]]) -> None:
    st.subheader("A2A conversations and tasks")
    if not agents:
        return
    names = {str(a["name"]): str(a["id"]) for a in agents}
    name = st.selectbox("Agent", list(names), key="a2a_agent")
    if name is None:
        return
    read = ui.guarded("Database", a2a.a2a_data, url, cfg.db_timeout, names[name], LIMIT)
    if read is None:
        return
    if not read.conversations and not read.tasks:
        st.info(f"No A2A conversations with {name} yet.")
        return
    states = [t["state"] for t in read.tasks]
    a, b, c, d = st.columns(4)
    a.metric("Conversations", len(read.conversations))
    b.metric("Tasks", len(read.tasks))
    c.metric("Working or submitted", sum(s in ("working", "submitted") for s in states))
    d.metric("Failed", states.count("failed"))
    if read.conversations:
        st.caption("Conversations (A2A contexts)")
        st.dataframe(
            charts.frame(read.conversations)[
                ["id", "topic", "status", "message_count", "last_message_at", "created_at"]
            ],
            hide_index=True,
            width="stretch",
        )
    if read.tasks:
        st.caption("Tasks (each an a2a.task job)")
        st.dataframe(
            charts.frame(read.tasks)[
                [
                    "task_id",
                    "state",
                    "text",
                    "context_id",
                    "job_status",
                    "attempts",
                    "last_error",
                    "created_at",
                    "finished_at",
                ]
            ],
            hide_index=True,
            width="stretch",
        )
