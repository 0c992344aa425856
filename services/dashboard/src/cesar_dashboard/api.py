"""Actions through the API: retry and cancel jobs, refresh the materialized views.

The dashboard never writes to the database; every change is a ``POST`` to the API with
``Authorization: Bearer <API_KEY>``. Each call becomes an :class:`ActionOutcome` with a message
an operator can read; nothing here raises for an unreachable API or a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import httpx

from cesar_dashboard.settings import DashboardSettings

__all__ = [
    "MAX_BULK",
    "ActionOutcome",
    "BulkOutcome",
    "JobAction",
    "job_action",
    "job_action_bulk",
    "refresh_views",
]

JobAction = Literal["retry", "cancel"]
MAX_BULK = 500


@dataclass(frozen=True)
class ActionOutcome:
    ok: bool
    message: str
    status_code: int | None = None


@dataclass
class BulkOutcome:
    action: JobAction
    succeeded: list[UUID] = field(default_factory=list)
    failed: list[tuple[UUID, str]] = field(default_factory=list)
    unreachable: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and self.unreachable is None


def _detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return str(body)[:200]


def _headers(settings: DashboardSettings) -> dict[str, str]:
    if settings.api_key is None:
        return {}
    return {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"}


def _post(client: httpx.Client, settings: DashboardSettings, path: str) -> ActionOutcome:
    url = f"{settings.api_base}{path}"
    try:
        response = client.post(url, headers=_headers(settings))
    except httpx.HTTPError as exc:
        reason = str(exc).strip() or type(exc).__name__
        return ActionOutcome(False, f"API unreachable at {settings.api_base}: {reason}")
    if response.is_success:
        return ActionOutcome(True, "done", response.status_code)
    code = response.status_code
    if code in (401, 403):
        message = f"the API refused the API key (HTTP {code}); check API_KEY"
    else:
        message = f"HTTP {code}: {_detail(response)}"
    return ActionOutcome(False, message, code)


def _client(settings: DashboardSettings) -> httpx.Client:
    # actions may take a little longer than a health probe
    return httpx.Client(timeout=max(settings.http_timeout, 5.0))


def _missing_key(settings: DashboardSettings) -> ActionOutcome | None:
    if settings.api_key is None:
        return ActionOutcome(False, "API_KEY is not set, so the dashboard cannot act")
    return None


def refresh_views(settings: DashboardSettings) -> ActionOutcome:
    """``POST /api/v1/monitoring/refresh``: the API refreshes the three materialized views."""
    if (missing := _missing_key(settings)) is not None:
        return missing
    with _client(settings) as client:
        return _post(client, settings, "/api/v1/monitoring/refresh")


def job_action(settings: DashboardSettings, action: JobAction, job_id: UUID) -> ActionOutcome:
    if (missing := _missing_key(settings)) is not None:
        return missing
    with _client(settings) as client:
        return _post(client, settings, f"/api/v1/jobs/{job_id}/{action}")


def job_action_bulk(
    settings: DashboardSettings, action: JobAction, job_ids: Iterable[UUID]
) -> BulkOutcome:
    """One request per job; stops at the first sign that the API itself is unreachable."""
    outcome = BulkOutcome(action)
    if (missing := _missing_key(settings)) is not None:
        outcome.unreachable = missing.message
        return outcome
    with _client(settings) as client:
        for job_id in list(job_ids)[:MAX_BULK]:
            result = _post(client, settings, f"/api/v1/jobs/{job_id}/{action}")
            if result.ok:
                outcome.succeeded.append(job_id)
            elif result.status_code is None or result.status_code in (401, 403):
                outcome.unreachable = result.message
                break
            else:
                outcome.failed.append((job_id, result.message))
    return outcome
