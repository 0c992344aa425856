"""``ingest.financial``: validate bars and upsert them into ``financial_data``.

Input: CSV text, JSON rows (a list of objects, or ``{"rows": [...]}``), or a file path
(``.json`` or CSV; under ``INGEST_BASE_DIR`` when that is set). Columns: symbol, ts (ISO date
or time, or epoch seconds; aliases date/timestamp/time), open, high, low, close (required),
volume, bar_interval (alias interval). Good rows are upserted
``ON CONFLICT (symbol, bar_interval, ts) DO UPDATE``; bad rows are counted and described in
``ingestion_log.errors`` (row number and reason). Idempotent: the upsert has a natural key and
the job's ``ingestion_log`` row (found by ``job_id``) is rewritten on a re-run.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import FinancialIngestPayload
from cesar_core.jobs.registry import JobContext, JobType, PermanentJobError

from cesar_worker.config import WorkerConfig

__all__ = ["JOB", "parse_rows", "validate_row"]

MAX_ERRORS_RECORDED = 100
BATCH = 1000
_ALIASES = {
    "date": "ts",
    "timestamp": "ts",
    "time": "ts",
    "datetime": "ts",
    "ticker": "symbol",
    "interval": "bar_interval",
}

UPSERT_BAR = """
INSERT INTO financial_data (symbol, ts, bar_interval, open, high, low, close, volume, source,
                            created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
ON CONFLICT (symbol, bar_interval, ts) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at
"""
SELECT_LOG = "SELECT id FROM ingestion_log WHERE job_id = $1 ORDER BY started_at LIMIT 1"
INSERT_LOG = """
INSERT INTO ingestion_log (source, job_id, status, started_at, created_at)
VALUES ($1, $2, 'running', $3, $3)
RETURNING id
"""
FINISH_LOG = """
UPDATE ingestion_log
SET status = $2, rows_total = $3, rows_ok = $4, rows_failed = $5, errors = CAST($6 AS JSONB),
    error_message = $7, details = CAST($8 AS JSONB), finished_at = $9
WHERE id = $1
"""

Bar = tuple[
    str, datetime, str, Decimal | None, Decimal | None, Decimal | None, Decimal, Decimal | None
]


def _normalise_keys(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        k = str(key).strip().lower()
        out[_ALIASES.get(k, k)] = value.strip() if isinstance(value, str) else value
    return out


def parse_rows(text: str, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PermanentJobError(f"JSON input is not valid JSON: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            data = data["rows"]
        if not isinstance(data, list):
            raise PermanentJobError('JSON input must be a list of rows (or {"rows": [...]})')
        return [r if isinstance(r, dict) else {"_invalid": r} for r in data]
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise PermanentJobError("CSV input has no header row")
    return [dict(r) for r in reader]


def _decimal(row: dict[str, Any], name: str, *, required: bool = False) -> Decimal | None:
    value = row.get(name)
    if value is None or value == "":
        if required:
            raise ValueError(f"{name} is required")
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{name} {value!r} is not a finite number")
    return number


def _timestamp(value: Any) -> datetime:
    if value is None or value == "":
        raise ValueError("ts is required")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    text = str(value)
    try:
        if len(text) == 10 and text[4] == "-":
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"ts {text!r} is not an ISO date or time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def validate_row(row: dict[str, Any], payload: FinancialIngestPayload) -> Bar:
    """The row as a bar, or ValueError saying what is wrong with it."""
    if "_invalid" in row:
        raise ValueError("row is not an object")
    symbol = str(row.get("symbol") or payload.symbol or "").strip().upper()
    if not symbol:
        raise ValueError("symbol is required")
    if len(symbol) > 40:
        raise ValueError("symbol is longer than 40 characters")
    ts = _timestamp(row.get("ts"))
    interval = str(row.get("bar_interval") or payload.bar_interval).strip()
    open_, high, low = _decimal(row, "open"), _decimal(row, "high"), _decimal(row, "low")
    close = _decimal(row, "close", required=True)
    assert close is not None
    volume = _decimal(row, "volume")
    if high is not None and low is not None and high < low:
        raise ValueError(f"high {high} is below low {low}")
    if volume is not None and volume < 0:
        raise ValueError(f"volume {volume} is negative")
    return (symbol, ts, interval, open_, high, low, close, volume)


def _read_input(payload: FinancialIngestPayload, config: WorkerConfig) -> tuple[str, str]:
    if payload.path is not None:
        if not config.ingest_base_dir:
            # A path from an API caller must never open the worker's whole filesystem.
            raise PermanentJobError(
                "file ingestion is disabled: set INGEST_BASE_DIR on the worker, "
                "or send the data in the payload"
            )
        base = Path(config.ingest_base_dir).resolve()
        path = (base / payload.path).resolve()
        if not path.is_relative_to(base):
            raise PermanentJobError(f"path {payload.path} is outside INGEST_BASE_DIR")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise PermanentJobError(f"cannot read {payload.path}: {exc.strerror}") from exc
        fmt = payload.format or ("json" if path.suffix.lower() == ".json" else "csv")
        return text, fmt
    if isinstance(payload.data, list):
        return json.dumps(payload.data, default=str), "json"
    text = payload.data or ""
    fmt = payload.format or ("json" if text.lstrip().startswith(("[", "{")) else "csv")
    return text, fmt


async def _log_row(ctx: JobContext, source: str, now: datetime) -> UUID:
    async def work(conn: asyncpg.Connection) -> UUID:
        existing = await conn.fetchval(SELECT_LOG, ctx.job.id)
        if existing is not None:
            return UUID(str(existing))
        return UUID(str(await conn.fetchval(INSERT_LOG, source, ctx.job.id, now)))

    return await ctx.db.transaction(work)


def _upsert(chunk: list[tuple[Any, ...]]) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    async def work(conn: asyncpg.Connection) -> None:
        await conn.executemany(UPSERT_BAR, chunk)

    return work


async def ingest(ctx: JobContext, payload: FinancialIngestPayload) -> dict[str, Any]:
    config = ctx.settings
    assert isinstance(config, WorkerConfig)
    log_id = await _log_row(ctx, payload.source, ctx.clock())
    text, fmt = _read_input(payload, config)
    rows = parse_rows(text, fmt)
    good: list[Bar] = []
    errors: list[dict[str, Any]] = []
    failed = 0
    for number, row in enumerate(rows, start=1):
        try:
            good.append(validate_row(_normalise_keys(row), payload))
        except ValueError as exc:
            failed += 1
            if len(errors) < MAX_ERRORS_RECORDED:
                errors.append({"row": number, "error": str(exc)})
    now = ctx.clock()
    for start in range(0, len(good), BATCH):
        chunk = [(*bar, payload.source, now) for bar in good[start : start + BATCH]]
        await ctx.db.transaction(_upsert(chunk))
    status = "succeeded" if not failed else ("partial" if good else "failed")
    message = None
    if not rows:
        status, message = "failed", "the input has no rows"
    elif not good:
        message = f"all {failed} rows are invalid"
    details = {
        "format": fmt,
        "bar_interval": payload.bar_interval,
        "path": payload.path,
        "errors_truncated": failed > len(errors),
    }
    await ctx.db.transaction(
        lambda conn: conn.execute(
            FINISH_LOG,
            log_id,
            status,
            len(rows),
            len(good),
            failed,
            json.dumps(errors),
            message,
            json.dumps(details),
            ctx.clock(),
        )
    )
    result = {
        "ingestion_log_id": str(log_id),
        "status": status,
        "rows_total": len(rows),
        "rows_ok": len(good),
        "rows_failed": failed,
    }
    if message:
        raise PermanentJobError(f"{message} (ingestion_log {log_id})")
    return result


JOB = JobType(builtin.FINANCIAL_INGEST, ingest)
