"""The optional login: with ``DASHBOARD_PASSWORD`` (or ``DASHBOARD_PASSWORD_FILE``) set, no
page is read and no action runs until this browser session has given the password.

One shared password, not accounts: it keeps whoever merely reaches the port from reading the
job payloads and from retrying or cancelling jobs with the dashboard's write ``API_KEY``.
"""

from __future__ import annotations

import hmac

import streamlit as st
from pydantic import SecretStr

from cesar_dashboard.settings import DashboardSettings

__all__ = ["LOGGED_IN_KEY", "logout_button", "password_matches", "require_login"]

LOGGED_IN_KEY = "cesar_logged_in"


def password_matches(given: str, expected: SecretStr) -> bool:
    """Compared in constant time, so the answer's timing says nothing about how much of a
    guess was right."""
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def require_login(cfg: DashboardSettings) -> None:
    """Return when the session may proceed; otherwise show the login form and stop the run."""
    if cfg.dashboard_password is None or st.session_state.get(LOGGED_IN_KEY) is True:
        return
    st.title("CESAR ops")
    with st.form("login", clear_on_submit=True):
        given = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        if password_matches(given, cfg.dashboard_password):
            st.session_state[LOGGED_IN_KEY] = True
            st.rerun()
        st.error("Wrong password.")
    st.stop()


def logout_button(cfg: DashboardSettings) -> None:
    """In the sidebar, when a password protects the dashboard."""
    if cfg.dashboard_password is None:
        return
    if st.sidebar.button("Log out", key="logout", width="stretch"):
        st.session_state.pop(LOGGED_IN_KEY, None)
        st.rerun()
