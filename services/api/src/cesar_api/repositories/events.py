"""Agent events: batch insert, filtered keyset listing, and the replay behind WebSocket resume."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from cesar_api.repositories import as_dicts, dump_json

__all__ = [
    "EVENT_COLUMNS",
    "EventPageRows",
    "insert_many",
    "list_events",
    "position_of",
    "replay_after",
]

EVENT_COLUMNS = (
    "id, agent_id, event_type, payload, severity, source, correlation_id, occurred_at, created_at"
)
_JSON = ("payload",)

# one statement for the whole batch: arrays unnested side by side (PostgreSQL and CockroachDB)
INSERT_EVENTS = f"""
INSERT INTO agent_events (id, agent_id, event_type, payload, severity, source,
                          correlation_id, occurred_at, created_at)
SELECT e.id, e.agent_id, e.event_type, CAST(e.payload AS JSONB), e.severity, e.source,
       e.correlation_id, COALESCE(e.occurred_at, now()),
       now() + e.pos * INTERVAL '1 microsecond'
FROM unnest($1::UUID[], $2::UUID[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
            $7::TEXT[], $8::TIMESTAMPTZ[], $9::INT8[])
     AS e(id, agent_id, event_type, payload, severity, source, correlation_id, occurred_at, pos)
RETURNING {EVENT_COLUMNS}
"""

LIST_EVENTS = f"""
SELECT {EVENT_COLUMNS} FROM agent_events
WHERE ($1::UUID IS NULL OR agent_id = $1)
  AND ($2::TEXT IS NULL OR event_type = $2)
  AND ($3::TIMESTAMPTZ IS NULL OR occurred_at >= $3)
  AND ($4::TIMESTAMPTZ IS NULL OR (created_at, id) < ($4::TIMESTAMPTZ, $5::UUID))
  AND expires_at > now()
ORDER BY created_at DESC, id DESC
LIMIT $6
"""

# LIST_EVENTS, also stopping before the payloads pass $7 bytes (the first event always
# counts): one page may not make the database send hundreds of megabytes. ``fetched`` is the
# page size before the cut, so the caller knows when to offer a next cursor anyway.
LIST_EVENTS_BOUNDED = f"""
WITH page AS ({LIST_EVENTS}),
sized AS (
    SELECT {EVENT_COLUMNS},
           sum(octet_length(CAST(payload AS TEXT))) OVER (
               ORDER BY created_at DESC, id DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto,
           row_number() OVER (ORDER BY created_at DESC, id DESC) AS pos,
           count(*) OVER () AS fetched
    FROM page
)
SELECT {EVENT_COLUMNS}, fetched FROM sized
WHERE pos = 1 OR upto <= $7::INT8
ORDER BY created_at DESC, id DESC
"""

EVENT_POSITION = "SELECT created_at, id FROM agent_events WHERE id = $1"

REPLAY_AFTER = f"""
SELECT {EVENT_COLUMNS} FROM agent_events
WHERE (created_at, id) > ($1::TIMESTAMPTZ, $2::UUID)
  AND ($3::UUID IS NULL OR agent_id = $3)
  AND ($4::TEXT IS NULL OR event_type = $4)
  AND expires_at > now()
ORDER BY created_at, id
LIMIT $5
"""


async def insert_many(
    conn: asyncpg.Connection, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert every event in one statement; rows come back in the order given."""
    # random ids (no write hotspot on a multi-node CockroachDB); the batch's order lives in
    # created_at instead: one microsecond apart, so the (created_at, id) cursor keeps it
    ids = [uuid.uuid4() for _ in events]
    rows = await conn.fetch(
        INSERT_EVENTS,
        ids,
        [e.get("agent_id") for e in events],
        [e["event_type"] for e in events],
        [dump_json(e.get("payload", {})) for e in events],
        [e.get("severity", "info") for e in events],
        [e.get("source") for e in events],
        [e.get("correlation_id") for e in events],
        [e.get("occurred_at") for e in events],
        list(range(len(events))),
    )
    by_id = {r["id"]: r for r in as_dicts(rows, _JSON)}
    return [by_id[i] for i in ids]


@dataclass(frozen=True)
class EventPageRows:
    """A listing page; ``truncated``: the byte bound ended it before ``limit`` rows."""

    rows: list[dict[str, Any]]
    truncated: bool


async def list_events(
    conn: asyncpg.Connection,
    *,
    agent_id: UUID | None,
    event_type: str | None,
    since: datetime | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
    max_bytes: int,
) -> EventPageRows:
    rows = await conn.fetch(
        LIST_EVENTS_BOUNDED,
        agent_id,
        event_type,
        since,
        before[0] if before else None,
        before[1] if before else None,
        limit,
        max_bytes,
    )
    fetched = int(rows[0]["fetched"]) if rows else 0
    out = as_dicts(rows, _JSON)
    for row in out:
        row.pop("fetched", None)
    return EventPageRows(out, truncated=fetched > len(out))


async def position_of(conn: asyncpg.Connection, event_id: UUID) -> tuple[datetime, UUID] | None:
    row = await conn.fetchrow(EVENT_POSITION, event_id)
    return (row["created_at"], row["id"]) if row else None


async def replay_after(
    conn: asyncpg.Connection,
    position: tuple[datetime, UUID],
    *,
    agent_id: UUID | None,
    event_type: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(REPLAY_AFTER, position[0], position[1], agent_id, event_type, limit)
    return as_dicts(rows, _JSON)
