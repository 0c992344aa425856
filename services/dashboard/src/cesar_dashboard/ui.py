"""What every page shares: settings, the sidebar, auto-refresh, guarded reads, formatting."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import streamlit as st
from cesar_core.errors import CesarError, ConfigurationError
from cesar_core.settings import describe_target

from cesar_dashboard import api, data
from cesar_dashboard.errors import DatabaseUnreachable, SchemaMissing
from cesar_dashboard.settings import DashboardSettings, load_dashboard_settings

__all__ = [
    "REFRESH_CHOICES",
    "STATUS_ICONS",
    "auto_refresh",
    "database_url",
    "fmt_age",
    "fmt_time",
    "guarded",
    "plain",
    "settings",
    "sidebar",
]

P = ParamSpec("P")
T = TypeVar("T")

SETTINGS_KEY = "cesar_settings"
REFRESH_KEY = "refresh_seconds"
FLASH_KEY = "cesar_flash"
REFRESH_CHOICES = (0, 5, 10, 15, 30, 60, 120, 300)
STATUS_ICONS = {
    "ok": ":green[:material/check_circle:]",
    "degraded": ":orange[:material/warning:]",
    "down": ":red[:material/error:]",
    "unknown": ":gray[:material/help:]",
}


# every ASCII punctuation character: CommonMark lets each be backslash-escaped
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def plain(value: object) -> str:
    """``value`` made safe to put inside Markdown (``st.error``, ``st.caption``, ...): shown
    exactly as written, never as a link, an image, an autolink, emphasis, a Streamlit
    directive (``:red[...]``, ``:material/...:``) or math. For text that comes from rows,
    payloads or other services (sync errors, unique keys, sources, API messages); longer
    text goes to ``st.code``/``st.text`` instead. Line breaks become spaces."""
    text = " ".join(str(value).splitlines())
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def settings() -> DashboardSettings:
    """The session's settings, built once (tests may put a DashboardSettings in session_state).

    A configuration error is shown on the page and the script stops; it never raises.
    """
    existing = st.session_state.get(SETTINGS_KEY)
    if isinstance(existing, DashboardSettings):
        return existing
    try:
        built = load_dashboard_settings()
    except ConfigurationError as exc:
        st.error(f"**Configuration error** — {exc}")
        st.stop()
    st.session_state[SETTINGS_KEY] = built
    return built


def database_url(cfg: DashboardSettings) -> str | None:
    try:
        return cfg.read_database_url()
    except ConfigurationError as exc:
        st.error(f"**Database not configured** — {exc}")
        return None


def guarded(part: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """``fn(...)``, or ``None`` after an ``st.error`` naming ``part`` when it is unreachable."""
    try:
        return fn(*args, **kwargs)
    except DatabaseUnreachable as exc:
        st.error(
            f"**{part} unreachable** — {exc}. The rest of the dashboard keeps working; "
            "this section shows nothing until the database answers again.",
            icon=":material/block:",
        )
    except SchemaMissing as exc:
        st.error(f"**{part} schema missing** — {exc}", icon=":material/block:")
    except CesarError as exc:
        st.error(f"**{part} failed** — {exc}", icon=":material/block:")
    return None


def fmt_time(value: Any) -> str:
    if not isinstance(value, datetime):
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _refresh_now(cfg: DashboardSettings) -> None:
    outcome = api.refresh_views(cfg)
    data.clear_caches()
    if outcome.ok:
        st.session_state[FLASH_KEY] = ("success", "Materialized views refreshed through the API.")
    else:
        st.session_state[FLASH_KEY] = (
            "warning",
            f"Views not refreshed: {plain(outcome.message)}. Showing the data as last refreshed.",
        )


def sidebar(cfg: DashboardSettings) -> None:
    """Refresh controls and where the dashboard reads from."""
    bar = st.sidebar
    default = min(REFRESH_CHOICES, key=lambda c: abs(c - cfg.refresh_seconds))
    bar.select_slider(
        "Auto-refresh every (seconds, 0 = off)",
        options=REFRESH_CHOICES,
        value=st.session_state.get(REFRESH_KEY, default),
        key=REFRESH_KEY,
    )
    if bar.button(
        "Refresh now",
        key="refresh_now",
        help="Refresh the materialized views through the API and re-read everything",
        width="stretch",
    ):
        _refresh_now(cfg)
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash is not None:
        kind, text = flash
        (bar.success if kind == "success" else bar.warning)(text)
    url = cfg.dashboard_database_url or cfg.database_url
    target = describe_target(url.get_secret_value()) if url is not None else "not configured"
    bar.caption(f"Reads (read-only): `{target}`")
    bar.caption(f"Acts through the API: `{cfg.api_base}`")
    if cfg.api_key is None:
        bar.caption("API_KEY is not set: retry, cancel and view refresh are disabled.")


def auto_refresh(
    title: str, render: Callable[[DashboardSettings], None], cfg: DashboardSettings
) -> None:
    """The page title, then ``render`` in a fragment that reruns itself every chosen interval."""
    st.title(title)
    interval = float(st.session_state.get(REFRESH_KEY, cfg.refresh_seconds) or 0)

    @st.fragment(run_every=interval if interval > 0 else None)
    def body() -> None:
        now = datetime.now(UTC)
        every = f"auto-refresh every {interval:.0f}s" if interval > 0 else "auto-refresh off"
        st.caption(f"Last refreshed {now:%H:%M:%S} UTC · {every}")
        render(cfg)

    body()
