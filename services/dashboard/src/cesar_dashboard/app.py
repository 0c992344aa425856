"""The Streamlit entry point: page config, settings, the sidebar and the page router.

Run with ``cesar-dashboard`` (or ``streamlit run <this file> --server.port 3000``).
"""

from __future__ import annotations

import streamlit as st

from cesar_dashboard import login, ui

st.set_page_config(page_title="CESAR ops", page_icon=":material/hub:", layout="wide")

cfg = ui.settings()
login.require_login(cfg)  # before any page, read or action
page = st.navigation(
    [
        st.Page(
            "app_pages/overview.py", title="Overview", icon=":material/monitor_heart:", default=True
        ),
        st.Page("app_pages/jobs.py", title="Jobs", icon=":material/work_history:", url_path="jobs"),
        st.Page(
            "app_pages/sync_lag.py", title="Sync lag", icon=":material/sync:", url_path="sync-lag"
        ),
        st.Page(
            "app_pages/ingestion.py",
            title="Ingestion",
            icon=":material/download:",
            url_path="ingestion",
        ),
        st.Page(
            "app_pages/agents.py", title="Agents", icon=":material/smart_toy:", url_path="agents"
        ),
        st.Page("app_pages/llm.py", title="LLM", icon=":material/chat:", url_path="llm"),
    ]
)
ui.sidebar(cfg)
login.logout_button(cfg)
page.run()
