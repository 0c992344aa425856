"""Jobs: filter, search, details, and retry/cancel through the API with a confirmation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from cesar_dashboard import api, data, ui
from cesar_dashboard.repository import (
    ACTIVE_STATUSES,
    ALL_STATUSES,
    RETRYABLE_STATUSES,
    JobFilter,
)
from cesar_dashboard.settings import DashboardSettings
from cesar_dashboard.views import charts

__all__ = ["LIST_LIMIT", "TITLE", "WINDOWS", "render"]

LIST_LIMIT = 200
WINDOWS: dict[str, float | None] = {
    "Any time": None,
    "Last 15 minutes": 15 * 60.0,
    "Last hour": 3600.0,
    "Last 24 hours": 86400.0,
    "Last 7 days": 7 * 86400.0,
}
PENDING_KEY = "jobs_pending_action"
RESULT_KEY = "jobs_action_result"


@dataclass(frozen=True)
class PendingAction:
    action: api.JobAction
    scope: str  # "one" or "filtered"
    job_id: str | None
    flt: JobFilter | None
    count: int


TITLE = "Jobs"


def _filters(job_types: list[str]) -> JobFilter:
    a, b, c = st.columns([2, 2, 1])
    chosen_types = a.multiselect("Type", options=job_types, key="jobs_types")
    chosen_statuses = b.multiselect("Status", options=list(ALL_STATUSES), key="jobs_statuses")
    window = c.selectbox("Created", options=list(WINDOWS), key="jobs_window")
    search = st.text_input(
        "Search by id or payload text", key="jobs_search", placeholder="e.g. 3f2a or AAPL"
    )
    return JobFilter(
        job_types=tuple(chosen_types),
        statuses=tuple(chosen_statuses),
        window_seconds=WINDOWS[window],
        search=search,
    )


def _json_block(label: str, text: str | None) -> None:
    st.markdown(f"**{label}**")
    if text is None:
        st.caption("none")
        return
    try:
        st.json(json.loads(text), expanded=True)
    except ValueError:
        st.code(text)


def _timeline(job: dict[str, Any]) -> None:
    moments = [
        ("created", job["created_at"]),
        ("run after", job["run_after"]),
        ("started", job["started_at"]),
        ("last heartbeat", job["heartbeat_at"]),
        ("finished", job["finished_at"]),
        ("updated", job["updated_at"]),
    ]
    present = [(name, at) for name, at in moments if at is not None]
    st.markdown("**Timeline**")
    st.dataframe(
        pd.DataFrame(
            {"event": [n for n, _ in present], "at": [ui.fmt_time(t) for _, t in present]}
        ),
        hide_index=True,
        width="content",
    )
    if len(present) > 1:
        df = pd.DataFrame({"event": [n for n, _ in present], "at": [t for _, t in present]})
        chart = (
            alt.Chart(df)
            .mark_point(filled=True, size=120)
            .encode(
                x=charts.utc_time_x("at", None),
                color=alt.Color("event:N", legend=alt.Legend(orient="bottom")),
                tooltip=["event", "at"],
            )
            .properties(height=80)
        )
        st.altair_chart(chart, width="stretch")


def _ask(pending: PendingAction) -> None:
    st.session_state[PENDING_KEY] = pending


def _confirmation(cfg: DashboardSettings, url: str, slot: DeltaGenerator) -> None:
    pending = st.session_state.get(PENDING_KEY)
    if not isinstance(pending, PendingAction):
        return
    what = (
        f"job {pending.job_id}"
        if pending.scope == "one"
        else f"{pending.count} job{'s' if pending.count != 1 else ''} of the filtered set"
    )
    with slot.container(border=True):
        st.warning(f"**{pending.action.capitalize()} {what}?** This goes through the API.")
        yes, no = st.columns(2)
        if yes.button(f"Yes, {pending.action}", key="jobs_confirm", type="primary"):
            del st.session_state[PENDING_KEY]
            st.session_state[RESULT_KEY] = _execute(cfg, url, pending)
            data.clear_caches()
            st.rerun()
        if no.button("No, keep them as they are", key="jobs_abort"):
            del st.session_state[PENDING_KEY]
            st.rerun()


def _execute(cfg: DashboardSettings, url: str, pending: PendingAction) -> tuple[str, str]:
    if pending.scope == "one" and pending.job_id is not None:
        outcome = api.job_action(cfg, pending.action, UUID(pending.job_id))
        if outcome.ok:
            return "success", f"{pending.action.capitalize()} requested for job {pending.job_id}."
        return (
            "error",
            f"{pending.action.capitalize()} of job {pending.job_id} failed: "
            f"{ui.plain(outcome.message)}",
        )
    assert pending.flt is not None
    statuses = RETRYABLE_STATUSES if pending.action == "retry" else ACTIVE_STATUSES
    ids = ui.guarded(
        "Database",
        data.job_ids_for_action,
        url,
        cfg.db_timeout,
        pending.flt,
        statuses,
        api.MAX_BULK,
    )
    if ids is None:
        return "error", "Could not list the filtered jobs; nothing was changed."
    bulk = api.job_action_bulk(cfg, pending.action, ids)
    parts = [f"{pending.action.capitalize()}: {len(bulk.succeeded)} of {len(ids)} jobs done."]
    if bulk.failed:
        first_id, first_reason = bulk.failed[0]
        parts.append(f"{len(bulk.failed)} refused (e.g. {first_id}: {ui.plain(first_reason)}).")
    if bulk.unreachable:
        parts.append(f"Stopped: {ui.plain(bulk.unreachable)}.")
    return ("success" if bulk.ok else "error"), " ".join(parts)


def _show_result() -> None:
    result = st.session_state.pop(RESULT_KEY, None)
    if result is not None:
        kind, text = result
        (st.success if kind == "success" else st.error)(text)


def _bulk_buttons(flt: JobFilter, counts: dict[str, int], can_act: bool) -> None:
    retryable = sum(counts.get(s, 0) for s in RETRYABLE_STATUSES)
    cancellable = sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
    a, b = st.columns(2)
    if a.button(
        f"Retry {retryable} failed/cancelled in the filtered set",
        key="jobs_bulk_retry",
        disabled=not can_act or retryable == 0,
    ):
        _ask(PendingAction("retry", "filtered", None, flt, min(retryable, api.MAX_BULK)))
    if b.button(
        f"Cancel {cancellable} active in the filtered set",
        key="jobs_bulk_cancel",
        disabled=not can_act or cancellable == 0,
    ):
        _ask(PendingAction("cancel", "filtered", None, flt, min(cancellable, api.MAX_BULK)))
    if max(retryable, cancellable) > api.MAX_BULK:
        st.caption(f"Bulk actions apply to the newest {api.MAX_BULK} matching jobs at most.")


def _attempts(rows: list[dict[str, Any]]) -> None:
    """Each attempt: who ran it, when, and how it ended (plain text: errors are untrusted)."""
    st.markdown("**Attempts**")
    if not rows:
        st.caption("no attempt yet")
        return
    st.dataframe(
        pd.DataFrame(
            {
                "attempt": [r["attempt"] for r in rows],
                "worker": [r["worker_id"] or "—" for r in rows],
                "started": [ui.fmt_time(r["started_at"]) for r in rows],
                "finished": [
                    ui.fmt_time(r["finished_at"]) if r["finished_at"] else "—" for r in rows
                ],
                "outcome": [r["outcome"] or "running" for r in rows],
                "error": [(r["error"] or "")[:300] for r in rows],
            }
        ),
        hide_index=True,
        width="stretch",
    )


def _details(cfg: DashboardSettings, url: str, jobs: list[dict[str, Any]], can_act: bool) -> None:
    st.subheader("Job details")
    labels = {str(j["id"]): f"{str(j['id'])[:8]} · {j['job_type']} · {j['status']}" for j in jobs}
    chosen = st.selectbox(
        "Job", options=list(labels), format_func=lambda k: labels[k], key="jobs_selected"
    )
    if chosen is None:
        return
    job = ui.guarded("Database", data.job_detail, url, cfg.db_timeout, chosen)
    if job is None:
        return
    a, b, c, d = st.columns(4)
    a.metric("Status", str(job["status"]))
    b.metric("Attempts", f"{job['attempts']}/{job['max_attempts']}")
    c.metric("Type", str(job["job_type"]))
    d.metric("Worker", str(job["worker_id"] or "—"))
    # the unique key is the caller's text: escaped, and outside a code span (where a
    # backtick in it would end the span and its backslashes would show)
    st.caption(
        f"id `{job['id']}`"
        + (f" · unique key: {ui.plain(job['unique_key'])}" if job["unique_key"] else "")
    )
    if job["last_error"]:
        st.markdown("**Last error**")
        st.code(str(job["last_error"]), language=None)
    left, right = st.columns(2)
    with left:
        _json_block("Payload", job["payload"])
    with right:
        _json_block("Result", job["result"])
    _timeline(job)
    _attempts(job.get("attempt_rows") or [])
    status = str(job["status"])
    x, y = st.columns(2)
    if x.button(
        "Retry this job",
        key="jobs_retry_one",
        disabled=not can_act or status not in RETRYABLE_STATUSES,
        help="Only failed or cancelled jobs can be retried",
    ):
        _ask(PendingAction("retry", "one", str(job["id"]), None, 1))
    if y.button(
        "Cancel this job",
        key="jobs_cancel_one",
        disabled=not can_act or status not in ACTIVE_STATUSES,
        help="Only pending, queued, running or retrying jobs can be cancelled",
    ):
        _ask(PendingAction("cancel", "one", str(job["id"]), None, 1))


def render(cfg: DashboardSettings) -> None:
    url = ui.database_url(cfg)
    if url is None:
        return
    _show_result()
    slot = st.container()  # the confirmation appears here, above the list
    # the options need a first read; the filter then narrows the same read
    flt_state = JobFilter(
        job_types=tuple(st.session_state.get("jobs_types", ())),
        statuses=tuple(st.session_state.get("jobs_statuses", ())),
        window_seconds=WINDOWS.get(st.session_state.get("jobs_window", "Any time")),
        search=str(st.session_state.get("jobs_search", "")),
    )
    jobs_read = ui.guarded("Database", data.jobs_data, url, cfg.db_timeout, flt_state, LIST_LIMIT)
    if jobs_read is None:
        return
    flt = _filters(jobs_read.job_types)
    if flt != flt_state:
        jobs_read = ui.guarded("Database", data.jobs_data, url, cfg.db_timeout, flt, LIST_LIMIT)
        if jobs_read is None:
            return

    can_act = cfg.api_key is not None
    if not can_act:
        st.info("API_KEY is not set: the dashboard can show jobs but not retry or cancel them.")

    if not jobs_read.jobs:
        if jobs_read.total == 0 and flt == JobFilter():
            st.info("No jobs yet: the queue has never had a job.")
        else:
            st.info("No jobs match these filters.")
        _confirmation(cfg, url, slot)
        return

    counts = jobs_read.status_counts
    st.metric("Matching jobs", jobs_read.total)
    st.caption(" · ".join(f"{s}: {counts[s]}" for s in ALL_STATUSES if s in counts))
    df = charts.frame(jobs_read.jobs)
    st.dataframe(
        df[
            [
                "id",
                "job_type",
                "status",
                "attempts",
                "max_attempts",
                "created_at",
                "started_at",
                "finished_at",
                "last_error",
            ]
        ],
        hide_index=True,
        width="stretch",
    )
    if jobs_read.total > len(jobs_read.jobs):
        st.caption(f"Showing the newest {len(jobs_read.jobs)} of {jobs_read.total}.")
    _bulk_buttons(flt, counts, can_act)
    _details(cfg, url, jobs_read.jobs, can_act)
    _confirmation(cfg, url, slot)
