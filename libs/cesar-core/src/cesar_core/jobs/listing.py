"""The job listing as JSON built by the database (the API's hot read path).

:func:`list_jobs_json` returns the same page as :func:`cesar_core.jobs.repository.list_jobs`
(same filters, same order, same keyset cursor), but as one JSON text that the database
assembles: the items in the field order of the ``Job`` model without ``dispatch_token``,
``payload`` and ``result`` embedded as stored, timestamps formatted the way pydantic writes
them (UTC, ``Z``, microseconds only when non-zero). Nothing is decoded into Python objects, so
the cost per row in the calling process is close to zero (the text even arrives as UTF-8
bytes, ``convert_to``, so it is not decoded and encoded again on its way to the socket).

The output parses to the same value as dumping the models (the only byte difference is the
whitespace inside ``payload``/``result``, as the database prints JSONB). The SQL is portable:
``to_json``, ``to_char``, ``string_agg ... ORDER BY``, ``convert_to`` and ``date_trunc`` exist
on PostgreSQL and CockroachDB alike.

Measured alternative (not kept): fetching the 50 rows as binary columns (``payload``/``result``
as text) and encoding them in Python with ``orjson`` (``Fragment`` for the JSON columns) gave
the same bytes and cost PostgreSQL less (~0.12 ms instead of ~0.26 ms per page, one
connection in a loop), but the API process, the bottleneck here, ~0.11 ms more (~0.06 ms more
in asyncpg decoding 800 values, ~0.05 ms for the dicts and orjson). With ``python -m bench api`` (3 interleaved rounds, runs
alternated old/new/old/new on the same machine) the listing fell from 2244/2507 req/s to
1649/1616 req/s (42%/45% -> 29%/33% of bare ``SELECT 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from cesar_core.jobs.repository import LIST_PAGE, page_args

__all__ = [
    "LIST_JOBS_JSON_BOUNDED",
    "JobPageJson",
    "list_jobs_json",
    "list_jobs_json_bounded",
]


def _timestamp(column: str) -> str:
    """A TIMESTAMPTZ as the JSON string pydantic writes: "2026-01-02T03:04:05[.ffffff]Z"."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"'\"' || to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN date_trunc('second', {column}) = {column} THEN 'Z\"' "
        f"ELSE to_char({utc}, '.US') || 'Z\"' END"
    )


def _nullable(expression: str) -> str:
    return f"COALESCE({expression}, 'null')"


def _string(column: str) -> str:
    return f"CAST(to_json({column}) AS TEXT)"


# (key, SQL expression giving the JSON text of the value), in the Job model's field order
_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "'\"' || CAST(id AS TEXT) || '\"'"),
    ("job_type", _string("job_type")),
    ("payload", "CAST(COALESCE(payload, CAST('{}' AS JSONB)) AS TEXT)"),
    ("status", _string("status")),
    ("attempts", "CAST(attempts AS TEXT)"),
    ("max_attempts", "CAST(max_attempts AS TEXT)"),
    ("run_after", _timestamp("run_after")),
    ("unique_key", _nullable(_string("unique_key"))),
    ("last_error", _nullable(_string("last_error"))),
    ("result", _nullable("CAST(result AS TEXT)")),
    ("worker_id", _nullable(_string("worker_id"))),
    ("heartbeat_at", _nullable(_timestamp("heartbeat_at"))),
    ("created_at", _timestamp("created_at")),
    ("started_at", _nullable(_timestamp("started_at"))),
    ("updated_at", _timestamp("updated_at")),
    ("finished_at", _nullable(_timestamp("finished_at"))),
)

_OBJECT = (
    "'{' || " + " || ',' || ".join(f"'\"{key}\":' || {expr}" for key, expr in _FIELDS) + (" || '}'")
)

_NO_BOUND = 2**62


@dataclass(frozen=True)
class JobPageJson:
    """``items``: the comma-separated JSON objects as UTF-8 (wrap in ``[...]``); ``count`` of
    them; ``last``: (created_at, id) of the last one, for the keyset cursor (None when empty)."""

    items: bytes
    count: int
    last: tuple[datetime, UUID] | None
    truncated: bool = False  # the byte bound cut the page short (list_jobs_json_bounded)

    def items_array(self) -> bytes:
        return b"[" + self.items + b"]"


async def list_jobs_json(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    job_type: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    search: str | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> JobPageJson:
    """The page :func:`~cesar_core.jobs.repository.list_jobs` returns, as database-built JSON
    (no byte bound: :func:`list_jobs_json_bounded` with a bound nothing reaches)."""
    return await list_jobs_json_bounded(
        conn,
        status=status,
        job_type=job_type,
        created_after=created_after,
        created_before=created_before,
        search=search,
        before=before,
        limit=limit,
        max_bytes=_NO_BOUND,
    )


# The same page as repository.LIST_JOBS, parameter for parameter, as database-built JSON;
# it also stops before its items pass $9 bytes (the first item always
# counts), so one request cannot make the database build and send hundreds of megabytes.
# ``fetched`` is the page size before the cut: more than ``n`` means the page was cut.
LIST_JOBS_JSON_BOUNDED = f"""
WITH page AS (
    SELECT id, job_type, payload, status, attempts, max_attempts, run_after, unique_key,
           last_error, result, worker_id, heartbeat_at, created_at, started_at, updated_at,
           finished_at
    FROM job_queue
    {LIST_PAGE}
),
objects AS (
    SELECT created_at, id, {_OBJECT} AS obj FROM page
),
sized AS (
    SELECT created_at, id, obj,
           sum(octet_length(obj) + 1) OVER (ORDER BY created_at DESC, id DESC
                                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
               AS upto,
           row_number() OVER (ORDER BY created_at DESC, id DESC) AS pos
    FROM objects
),
kept AS (
    SELECT created_at, id, obj FROM sized WHERE pos = 1 OR upto <= $9::INT8
),
agg AS (
    SELECT convert_to(COALESCE(string_agg(obj, ',' ORDER BY created_at DESC, id DESC), ''),
                      'UTF8') AS items,
           count(*) AS n
    FROM kept
),
last_row AS (
    SELECT created_at, id FROM kept ORDER BY created_at, id LIMIT 1
)
SELECT agg.items, agg.n, (SELECT count(*) FROM page) AS fetched,
       last_row.created_at AS last_created_at, last_row.id AS last_id
FROM agg LEFT JOIN last_row ON true
"""


async def list_jobs_json_bounded(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    job_type: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    search: str | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
    max_bytes: int,
) -> JobPageJson:
    """:func:`list_jobs_json`, cut before the items pass ``max_bytes`` (at least one item);
    ``truncated`` says the page stopped early, so the caller still offers a next cursor."""
    row = await conn.fetchrow(
        LIST_JOBS_JSON_BOUNDED,
        *page_args(status, job_type, created_after, created_before, search, before, limit),
        max_bytes,
    )
    assert row is not None  # an aggregate always returns one row
    last = (row["last_created_at"], row["last_id"]) if row["last_id"] is not None else None
    count = int(row["n"])
    return JobPageJson(
        items=row["items"], count=count, last=last, truncated=int(row["fetched"]) > count
    )
