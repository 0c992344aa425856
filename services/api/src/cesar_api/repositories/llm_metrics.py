"""LLM cache metrics: hourly counters per model (written by the ollama proxy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from cesar_api.repositories import as_dicts

__all__ = ["list_buckets", "totals"]

LIST_BUCKETS = """
SELECT model, bucket_start, requests, cache_hits, cache_misses, prompt_tokens,
       completion_tokens, total_latency_ms, max_latency_ms, errors
FROM llm_cache_metrics
WHERE ($1::TEXT IS NULL OR model = $1)
  AND ($2::TIMESTAMPTZ IS NULL OR bucket_start >= $2)
  AND ($3::TIMESTAMPTZ IS NULL OR bucket_start < $3)
ORDER BY bucket_start DESC, model
LIMIT $4
"""

TOTALS = """
SELECT model,
       CAST(COALESCE(SUM(requests), 0) AS INT8) AS requests,
       CAST(COALESCE(SUM(cache_hits), 0) AS INT8) AS cache_hits,
       CAST(COALESCE(SUM(cache_misses), 0) AS INT8) AS cache_misses,
       CAST(COALESCE(SUM(prompt_tokens), 0) AS INT8) AS prompt_tokens,
       CAST(COALESCE(SUM(completion_tokens), 0) AS INT8) AS completion_tokens,
       CAST(COALESCE(SUM(total_latency_ms), 0) AS FLOAT8) AS total_latency_ms,
       CAST(COALESCE(MAX(max_latency_ms), 0) AS FLOAT8) AS max_latency_ms,
       CAST(COALESCE(SUM(errors), 0) AS INT8) AS errors
FROM llm_cache_metrics
WHERE ($1::TEXT IS NULL OR model = $1)
  AND ($2::TIMESTAMPTZ IS NULL OR bucket_start >= $2)
  AND ($3::TIMESTAMPTZ IS NULL OR bucket_start < $3)
GROUP BY model
ORDER BY model
"""


async def list_buckets(
    conn: asyncpg.Connection,
    *,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(LIST_BUCKETS, model, since, until, limit))


async def totals(
    conn: asyncpg.Connection, *, model: str | None, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(TOTALS, model, since, until))
