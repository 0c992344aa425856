"""Hourly aggregates per model, kept in memory and flushed to ``llm_cache_metrics``.

Every inference request adds to the counters of (model, start of its hour, UTC). A background
task flushes the deltas every ``PROXY_METRICS_FLUSH_SECONDS`` (and once more at shutdown) in one
transaction: one upsert per (model, hour) that *adds* the deltas, so replicas and restarts add
up instead of overwriting. A failed flush keeps the deltas for the next one (bounded). A bucket
the database refuses as data (a value it cannot store) would fail every later flush, so when
a batch is refused that way the buckets are written one by one and only the refused ones are
dropped (logged, counted as ``dropped``).

Counting: ``requests = cache_hits + cache_misses``; a miss is any request that went to
Ollama (cacheable or not); ``errors`` counts the misses that failed; tokens are what Ollama
reported for the misses (hits cost no tokens); rate-limited requests are not counted here
(they are in Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from cesar_core.db import Database
from cesar_core.errors import CesarError

__all__ = ["Aggregator", "Bucket", "hour_of", "upsert_buckets"]

log = logging.getLogger(__name__)

UPSERT_SQL = """
INSERT INTO llm_cache_metrics (
    model, bucket_start, requests, cache_hits, cache_misses,
    prompt_tokens, completion_tokens, total_latency_ms, max_latency_ms, errors
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (model, bucket_start) DO UPDATE SET
    requests          = llm_cache_metrics.requests + excluded.requests,
    cache_hits        = llm_cache_metrics.cache_hits + excluded.cache_hits,
    cache_misses      = llm_cache_metrics.cache_misses + excluded.cache_misses,
    prompt_tokens     = llm_cache_metrics.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = llm_cache_metrics.completion_tokens + excluded.completion_tokens,
    total_latency_ms  = llm_cache_metrics.total_latency_ms + excluded.total_latency_ms,
    max_latency_ms    = GREATEST(llm_cache_metrics.max_latency_ms, excluded.max_latency_ms),
    errors            = llm_cache_metrics.errors + excluded.errors,
    updated_at        = now()
"""

#: keep at most this many unflushed (model, hour) buckets while the database is away
MAX_PENDING_BUCKETS = 10_000

#: the database (or the driver, encoding it) refuses a row's values: retrying cannot help
_ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, UnicodeError)
#: the database is away or busy: keep the deltas for the next flush
_DATABASE_ERRORS = (CesarError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(slots=True)
class Bucket:
    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_latency_ms: float = 0.0
    max_latency_ms: float = 0.0
    errors: int = 0

    def merge(self, other: Bucket) -> None:
        self.requests += other.requests
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_latency_ms += other.total_latency_ms
        self.max_latency_ms = max(self.max_latency_ms, other.max_latency_ms)
        self.errors += other.errors


Batch = dict[tuple[str, datetime], Bucket]


async def upsert_buckets(conn: asyncpg.Connection, buckets: Batch) -> None:
    """Repository: add the deltas; the caller owns the transaction."""
    await conn.executemany(
        UPSERT_SQL,
        [
            (
                model,
                start,
                b.requests,
                b.cache_hits,
                b.cache_misses,
                b.prompt_tokens,
                b.completion_tokens,
                b.total_latency_ms,
                b.max_latency_ms,
                b.errors,
            )
            for (model, start), b in sorted(buckets.items())
        ],
    )


class Aggregator:
    """In-memory hourly counters and their flusher. ``database_url`` None disables writes."""

    def __init__(
        self,
        database_url: str | None,
        *,
        interval: float,
        on_flush: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database_url = database_url
        self.interval = interval
        self.on_flush = on_flush
        self.clock = clock
        self.pending: Batch = {}
        self.db: Database | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.database_url is not None

    def record(
        self,
        model: str,
        *,
        hit: bool,
        latency_ms: float,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        error: bool = False,
    ) -> None:
        if not self.enabled:
            return
        key = (model or "-", hour_of(self.clock()))
        bucket = self.pending.get(key)
        if bucket is None:
            if len(self.pending) >= MAX_PENDING_BUCKETS:
                return
            bucket = self.pending[key] = Bucket()
        bucket.requests += 1
        bucket.cache_hits += hit
        bucket.cache_misses += not hit
        bucket.prompt_tokens += prompt_tokens
        bucket.completion_tokens += completion_tokens
        bucket.total_latency_ms += latency_ms
        bucket.max_latency_ms = max(bucket.max_latency_ms, latency_ms)
        bucket.errors += error

    async def _database(self) -> Database:
        if self.db is None:
            assert self.database_url is not None
            self.db = await Database.open(self.database_url, min_size=0, max_size=2)
        return self.db

    async def flush(self) -> int:
        """Write the pending deltas; returns the number of rows upserted (0 when idle)."""
        if not self.enabled:
            return 0
        async with self._lock:
            if not self.pending:
                return 0
            batch, self.pending = self.pending, {}
            try:
                db = await self._database()
                try:
                    await self._write(db, batch)
                    written = len(batch)
                except _ROW_ERRORS:
                    written = await self._write_each(db, batch)
            except _DATABASE_ERRORS as exc:
                for key, bucket in batch.items():
                    if key in self.pending:
                        self.pending[key].merge(bucket)
                    elif len(self.pending) < MAX_PENDING_BUCKETS:
                        self.pending[key] = bucket
                log.warning("flushing llm_cache_metrics failed, will retry: %s", exc)
                self._report("error")
                return 0
            self._report("ok")
            return written

    @staticmethod
    async def _write(db: Database, batch: Batch) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            await upsert_buckets(conn, batch)

        await db.transaction(write)

    async def _write_each(self, db: Database, batch: Batch) -> int:
        """One transaction per bucket, dropping the ones refused as data. Each bucket leaves
        ``batch`` once written or dropped, so a database failure midway leaves exactly the
        unwritten ones there (for the caller to keep)."""
        written = 0
        for key in sorted(batch):
            try:
                await self._write(db, {key: batch[key]})
            except _ROW_ERRORS as exc:
                log.error(
                    "llm_cache_metrics refused the bucket of model %s at %s, dropped: %s",
                    ascii(key[0][:80]),
                    key[1].isoformat(),
                    type(exc).__name__,
                )
                self._report("dropped")
            else:
                written += 1
            del batch[key]
        return written

    def _report(self, result: str) -> None:
        if self.on_flush is not None:
            self.on_flush(result)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # the flusher must outlive any one bad flush
                log.exception("flushing llm_cache_metrics failed unexpectedly")

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="llm-cache-metrics-flush")

    async def stop(self) -> None:
        """Stop the timer, flush what is left, close the pool."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self.db is not None:
            await self.db.close()
            self.db = None
