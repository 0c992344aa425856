"""/api/v1/financial-data: batch upsert of bars and range queries by symbol."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, model_validator

from cesar_api.database import read, write
from cesar_api.deps import DbDep, ReadKey, WriteKey
from cesar_api.errors import InvalidInput
from cesar_api.repositories import financial as repo
from cesar_api.schemas import Number, StrictModel, Timestamp

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/financial-data", tags=["financial data"])

SYMBOL_PATTERN = r"^[A-Za-z0-9._\-^=/:]{1,40}$"
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, description="e.g. AAPL, BRK.B, ^GSPC")]
Interval = Annotated[str, Field(pattern=r"^[0-9A-Za-z]{1,20}$", description="e.g. 1m, 1h, 1d")]
Price = Number


class BarIn(StrictModel):
    symbol: Symbol
    ts: Timestamp = Field(description="bar start, with a time zone")
    bar_interval: Interval = "1d"
    open: Price | None = None
    high: Price | None = None
    low: Price | None = None
    close: Price
    volume: Annotated[Number, Field(ge=0)] | None = None
    source: Annotated[str, Field(min_length=1, max_length=100)] = "api"

    @model_validator(mode="after")
    def _high_low(self) -> BarIn:
        if self.high is not None and self.low is not None and self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self


class BarBatch(StrictModel):
    bars: list[BarIn] = Field(min_length=1, max_length=5000)


class UpsertResult(BaseModel):
    upserted: int


class BarOut(BaseModel):
    id: Any
    symbol: str
    ts: datetime
    bar_interval: str
    open: float | None
    high: float | None
    low: float | None
    close: float
    volume: float | None
    source: str
    created_at: datetime
    updated_at: datetime


class BarSeries(BaseModel):
    symbol: str
    bars: list[BarOut]


def _decimal(value: float | None) -> Decimal | None:
    if value is None or not math.isfinite(value):
        return None
    return Decimal(repr(value))


@router.post("", response_model=UpsertResult)
async def upsert_bars(body: BarBatch, db: DbDep, _key: WriteKey) -> UpsertResult:
    """Insert or update bars on (symbol, bar_interval, ts), all in one transaction."""
    seen: dict[tuple[str, str, datetime], int] = {}
    bars: list[dict[str, Any]] = []
    for index, bar in enumerate(body.bars):
        key = (bar.symbol, bar.bar_interval, bar.ts)
        if key in seen:
            raise InvalidInput(
                f"body.bars[{index}]: same symbol, bar_interval and ts as bars[{seen[key]}]",
                details=[{"field": f"body.bars[{index}]", "problem": "duplicate bar"}],
            )
        seen[key] = index
        values = bar.model_dump()
        for column in ("open", "high", "low", "close", "volume"):
            values[column] = _decimal(values[column])
        bars.append(values)
    count = await write(db, lambda conn: repo.upsert_bars(conn, bars))
    return UpsertResult(upserted=count)


@router.get("/{symbol}", response_model=BarSeries)
async def query_bars(
    symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN)],
    db: DbDep,
    _key: ReadKey,
    start: Annotated[Timestamp | None, Query(description="ts >= start")] = None,
    end: Annotated[Timestamp | None, Query(description="ts < end")] = None,
    bar_interval: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z]{1,20}$")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> BarSeries:
    """Bars of one symbol in [start, end), oldest first."""
    if start is not None and end is not None and end <= start:
        raise InvalidInput("query.end: must be after start")
    rows = await read(
        db,
        lambda conn: repo.query_bars(
            conn, symbol, bar_interval=bar_interval, start=start, end=end, limit=limit
        ),
    )
    return BarSeries(symbol=symbol, bars=[BarOut.model_validate(r) for r in rows])
