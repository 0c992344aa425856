"""ERROR and CRITICAL log records as rows of ``system_alerts``: "no critical errors in logs".

:class:`AlertHandler` is a logging handler every service installs next to its stderr handler
(:func:`install_alert_handler`). The logging call only folds the record into an in-memory
table under a lock (no I/O, no database): records with the same *fingerprint* (service,
logger, level, the message template with numbers and ids blanked, the exception type) become one
entry whose count grows. A background thread, with its own event loop and connection, writes
the table every ``flush_seconds`` in one transaction: a new alert, or ``occurrences`` added to
the open alert with that ``alert_key`` (the partial unique index of migration 011).

Limits: at most ``max_pending`` distinct fingerprints wait between flushes (more are counted
and reported as one "alerts dropped" alert), so a flood of errors costs one write per
fingerprint per flush, never one per record. Messages pass through
:func:`cesar_core.logging.redact` (URL passwords, registered secrets) and are truncated.
When the database fails, the batch is kept for the next flush (still bounded) and one line goes
to stderr per outage, never through logging: records logged while writing (by the thread
itself, asyncpg included) are ignored, so the handler never feeds on its own failures.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from cesar_core.db import normalize_dsn
from cesar_core.logging import redact

__all__ = ["AlertHandler", "fingerprint", "install_alert_handler"]

MAX_MESSAGE = 2000
DROPPED_KEY = "alerts-dropped"
_VARIABLE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|0x[0-9a-f]+|\d+", re.I
)
UPSERT_ALERT = """
INSERT INTO system_alerts (alert_key, component, severity, status, message, labels,
                           occurrences, fired_at, last_seen_at, created_at, updated_at)
VALUES ($1, $2, $3, 'firing', $4, CAST($5 AS JSONB), $6, now(), now(), now(), now())
ON CONFLICT (alert_key) WHERE status IN ('firing', 'acknowledged') DO UPDATE SET
    occurrences = system_alerts.occurrences + EXCLUDED.occurrences,
    last_seen_at = EXCLUDED.last_seen_at,
    message = EXCLUDED.message,
    labels = EXCLUDED.labels,
    severity = CASE WHEN EXCLUDED.severity = 'critical' THEN 'critical'
                    ELSE system_alerts.severity END,
    updated_at = EXCLUDED.updated_at
"""


def fingerprint(service: str, record: logging.LogRecord) -> str:
    """Same service, logger, level, message template (numbers and ids blanked) and exception
    type -> same alert."""
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
    text = "|".join(
        (service, record.name, record.levelname, _VARIABLE.sub("#", template), exc_type)
    )
    return f"log:{service}:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


@dataclass
class _Pending:
    severity: str
    message: str
    labels: dict[str, Any]
    count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class AlertHandler(logging.Handler):
    """Folds ERROR/CRITICAL records into ``system_alerts`` from a background thread."""

    def __init__(
        self,
        service: str,
        database_url: str,
        *,
        flush_seconds: float = 2.0,
        max_pending: int = 200,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(level=logging.ERROR)
        self.service = service
        self._url = normalize_dsn(database_url)
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending
        self._connect_timeout = connect_timeout
        self._pending: dict[str, _Pending] = {}
        self._dropped = 0
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._generation = 0
        self._failing = False
        self._host = socket.gethostname()
        self._thread = threading.Thread(target=self._run, name=f"alerts-{service}", daemon=True)

    def start(self) -> AlertHandler:
        self._thread.start()
        return self

    # --- the logging side: no I/O ---------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is self._thread:
            return  # the writer's own records (asyncpg, ours): never recurse
        try:
            key = fingerprint(self.service, record)
            severity = "critical" if record.levelno >= logging.CRITICAL else "error"
            message = redact(record.getMessage())[:MAX_MESSAGE]
            labels: dict[str, Any] = {
                "service": self.service,
                "logger": record.name,
                "level": record.levelname.lower(),
                "host": self._host,
                "pid": os.getpid(),
            }
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                labels["exception"] = redact(f"{type(exc).__name__}: {exc}")[:MAX_MESSAGE]
        except Exception:  # a broken record must not break the caller
            self.handleError(record)
            return
        with self._guard:
            entry = self._pending.get(key)
            if entry is not None:
                entry.count += 1
                entry.message, entry.labels = message, labels
                if severity == "critical":
                    entry.severity = severity
            elif len(self._pending) < self._max_pending:
                self._pending[key] = _Pending(severity, message, labels)
            else:
                self._dropped += 1

    # --- the writer thread ----------------------------------------------------------------

    def _take(self) -> dict[str, _Pending]:
        with self._guard:
            batch, self._pending = self._pending, {}
            if self._dropped:
                batch[f"log:{self.service}:{DROPPED_KEY}"] = _Pending(
                    "error",
                    f"{self._dropped} error log records dropped: more than {self._max_pending} "
                    "distinct errors between two flushes",
                    {"service": self.service, "host": self._host},
                    count=self._dropped,
                )
                self._dropped = 0
        return batch

    def _give_back(self, batch: dict[str, _Pending]) -> None:
        """A failed batch waits for the next flush, merged with what came since (bounded)."""
        with self._guard:
            for key, entry in batch.items():
                newer = self._pending.get(key)
                if newer is not None:
                    newer.count += entry.count
                elif len(self._pending) < self._max_pending:
                    self._pending[key] = entry
                else:
                    self._dropped += entry.count

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        conn: asyncpg.Connection | None = None
        try:
            while True:
                stopping = self._stop.wait(self._flush_seconds)
                conn = loop.run_until_complete(self._flush(conn))
                with self._flushed:
                    self._generation += 1
                    self._flushed.notify_all()
                if stopping:
                    break
        finally:
            if conn is not None:
                loop.run_until_complete(_close(conn))
            loop.close()

    async def _flush(self, conn: asyncpg.Connection | None) -> asyncpg.Connection | None:
        batch = self._take()
        if not batch:
            return conn
        rows = [
            (key, self.service, e.severity, e.message, json.dumps(e.labels, default=str), e.count)
            for key, e in batch.items()
        ]
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
            for attempt in range(3):
                try:
                    async with conn.transaction():
                        await conn.executemany(UPSERT_ALERT, rows)
                    break
                except asyncpg.SerializationError:
                    if attempt == 2:
                        raise
        except Exception as exc:  # any failure: keep the batch, say so once, never log
            self._give_back(batch)
            if not self._failing:
                self._failing = True
                print(
                    f"cesar alerts ({self.service}): cannot write system_alerts, will retry: "
                    f"{redact(str(exc) or type(exc).__name__)}",
                    file=sys.stderr,
                    flush=True,
                )
            if conn is not None:
                await _close(conn)
            return None
        self._failing = False
        return conn

    def flush_now(self, timeout: float = 10.0) -> bool:
        """Wait until the writer has run one full flush after this call (tests, shutdown)."""
        if not self._thread.is_alive():
            return False
        with self._flushed:
            target = self._generation + 2  # a flush already under way may predate the call
            return self._flushed.wait_for(lambda: self._generation >= target, timeout)

    def close(self) -> None:
        """Final flush (bounded wait), then stop the thread. Called by logging at exit."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=self._connect_timeout + 2)
        super().close()


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2)
    except Exception:
        conn.terminate()


def install_alert_handler(
    service: str, database_url: str | None, **options: Any
) -> AlertHandler | None:
    """Add an :class:`AlertHandler` to the root logger (call right after configure_logging)."""
    if not database_url:
        return None
    handler = AlertHandler(service, database_url, **options).start()
    logging.getLogger().addHandler(handler)
    return handler
