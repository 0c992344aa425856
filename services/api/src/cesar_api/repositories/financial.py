"""Financial bars: batch upsert on (symbol, bar_interval, ts) and range queries by symbol."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from cesar_api.repositories import as_dicts

__all__ = ["query_bars", "upsert_bars"]

_COLUMNS = (
    "id, symbol, ts, bar_interval, open, high, low, close, volume, source, created_at, updated_at"
)

UPSERT_BARS = """
INSERT INTO financial_data (symbol, ts, bar_interval, open, high, low, close, volume, source)
SELECT b.symbol, b.ts, b.bar_interval, b.open, b.high, b.low, b.close, b.volume, b.source
FROM unnest($1::TEXT[], $2::TIMESTAMPTZ[], $3::TEXT[], $4::NUMERIC[], $5::NUMERIC[],
            $6::NUMERIC[], $7::NUMERIC[], $8::NUMERIC[], $9::TEXT[])
     AS b(symbol, ts, bar_interval, open, high, low, close, volume, source)
ON CONFLICT (symbol, bar_interval, ts) DO UPDATE SET
    open = excluded.open,
    high = excluded.high,
    low = excluded.low,
    close = excluded.close,
    volume = excluded.volume,
    source = excluded.source,
    updated_at = now()
RETURNING id
"""

QUERY_BARS = f"""
SELECT {_COLUMNS} FROM financial_data
WHERE symbol = $1
  AND ($2::TEXT IS NULL OR bar_interval = $2)
  AND ($3::TIMESTAMPTZ IS NULL OR ts >= $3)
  AND ($4::TIMESTAMPTZ IS NULL OR ts < $4)
ORDER BY ts, bar_interval
LIMIT $5
"""


async def upsert_bars(conn: asyncpg.Connection, bars: list[dict[str, Any]]) -> int:
    rows = await conn.fetch(
        UPSERT_BARS,
        [b["symbol"] for b in bars],
        [b["ts"] for b in bars],
        [b["bar_interval"] for b in bars],
        [b.get("open") for b in bars],
        [b.get("high") for b in bars],
        [b.get("low") for b in bars],
        [b["close"] for b in bars],
        [b.get("volume") for b in bars],
        [b["source"] for b in bars],
    )
    return len(rows)


async def query_bars(
    conn: asyncpg.Connection,
    symbol: str,
    *,
    bar_interval: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    return as_dicts(await conn.fetch(QUERY_BARS, symbol, bar_interval, start, end, limit))
