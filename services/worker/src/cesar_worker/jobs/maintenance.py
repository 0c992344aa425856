"""``maintenance.refresh_views`` and ``maintenance.noop``."""

from __future__ import annotations

import asyncio
from typing import Any

from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import NoopPayload, RefreshViewsPayload
from cesar_core.jobs.maintenance import refresh_materialized_views
from cesar_core.jobs.registry import JobContext, JobType

__all__ = ["NOOP", "REFRESH_VIEWS"]


async def refresh_views(ctx: JobContext, payload: RefreshViewsPayload) -> dict[str, Any]:
    """Idempotent by nature: a refresh recomputes the views from the tables."""
    timings = await refresh_materialized_views(ctx.db, payload.views)
    return {"refreshed": list(timings), "ms": {k: round(v, 1) for k, v in timings.items()}}


async def noop(ctx: JobContext, payload: NoopPayload) -> dict[str, Any]:
    if payload.sleep_seconds:
        await asyncio.sleep(payload.sleep_seconds)
    if payload.fail:
        raise RuntimeError(payload.fail)
    return {"ok": True, "echo": payload.echo} if payload.echo is not None else {"ok": True}


REFRESH_VIEWS = JobType(builtin.REFRESH_VIEWS, refresh_views)
NOOP = JobType(builtin.NOOP, noop)
