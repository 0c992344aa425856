"""The Agents page's per-agent brain section: memories (and their consolidation) and
reputation. Kept apart from the page's other sections; :mod:`views.agents` calls
:func:`render_agent_brain`."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cesar_dashboard import agent_brain, ui
from cesar_dashboard.settings import DashboardSettings
from cesar_dashboard.views import charts

__all__ = ["render_agent_brain"]

SELECT_KEY = "agents.brain.agent"


def _agent_label(agent: dict[str, Any]) -> str:
    return f"{agent['name']} ({agent['agent_type']})"


def render_agent_brain(cfg: DashboardSettings, url: str, agents: list[dict[str, Any]]) -> None:
    """Pick an agent; show its memories and its reputation."""
    if not agents:
        return
    st.subheader("Memory and reputation of an agent")
    by_label = {_agent_label(a): str(a["id"]) for a in agents}
    label = st.selectbox("Agent", list(by_label), key=SELECT_KEY)
    if label is None:
        return
    brain = ui.guarded("Database", agent_brain.agent_brain, url, cfg.db_timeout, by_label[label])
    if brain is None:
        return
    _render_memories(brain)
    _render_reputation(brain)


def _render_memories(brain: agent_brain.AgentBrain) -> None:
    counts = brain.memory_counts
    live = int(counts.get("live") or 0)
    archived = int(counts.get("total") or 0) - live
    # one line of text, not st.metric: the page's own metrics stay the page's headline
    st.markdown(
        f"**Memories:** {live} · **consolidated:** {int(counts.get('consolidated') or 0)} · "
        f"**archived (merged):** {archived} · **associations:** {brain.associations}"
    )
    if not brain.memories:
        st.info("No memories stored for this agent yet.")
    else:
        st.dataframe(
            charts.frame(brain.memories)[
                [
                    "content",
                    "memory_type",
                    "importance",
                    "access_count",
                    "tags",
                    "is_consolidated",
                    "is_archived",
                    "last_accessed_at",
                    "created_at",
                ]
            ],
            hide_index=True,
            width="stretch",
        )
    if brain.replay_sessions:
        st.caption("Replay sessions (memory.consolidate)")
        st.dataframe(charts.frame(brain.replay_sessions), hide_index=True, width="stretch")


def _render_reputation(brain: agent_brain.AgentBrain) -> None:
    rep = brain.reputation
    if rep is None:
        st.info("No reputation computed for this agent yet (the reputation.compute job).")
        return
    st.markdown(
        f"**Reputation:** {rep['score']:.3f} · **reliability:** {rep['reliability']:.3f} · "
        f"**responsiveness:** {rep['responsiveness']:.3f} · "
        f"**successes / failures:** {rep['successes']} / {rep['failures']}"
    )
    if brain.reputation_events:
        events = charts.frame(brain.reputation_events)
        st.caption("Reputation events")
        st.dataframe(events, hide_index=True, width="stretch")
