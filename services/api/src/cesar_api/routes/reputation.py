"""/api/v1/agents/{agent_id}/reputation: the score the ``reputation.compute`` job keeps, and
the events that moved it (the formula is in :mod:`cesar_core.reputation`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cesar_api.database import read
from cesar_api.deps import DbDep, ReadKey
from cesar_api.errors import NotFound
from cesar_api.repositories import agents as agents_repo
from cesar_api.repositories import routing as repo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/agents", tags=["reputation"])


class ReputationEventOut(BaseModel):
    id: UUID
    event_type: str
    delta: float
    score_before: float | None
    score_after: float | None
    reason: str | None
    task_id: UUID | None
    job_id: UUID | None
    metadata: dict[str, Any]
    created_at: datetime


class ReputationOut(BaseModel):
    agent_id: UUID
    computed: bool = Field(description="false until reputation.compute has scored the agent")
    score: float
    reliability: float
    quality: float
    responsiveness: float
    successes: int
    failures: int
    endorsements: int
    complaints: int
    avg_latency_ms: float | None
    last_event_at: datetime | None
    last_decayed_at: datetime | None
    events: list[ReputationEventOut]


_UNSCORED = {
    "score": 0.5,
    "reliability": 0.5,
    "quality": 0.5,
    "responsiveness": 0.5,
    "successes": 0,
    "failures": 0,
    "endorsements": 0,
    "complaints": 0,
    "avg_latency_ms": None,
    "last_event_at": None,
    "last_decayed_at": None,
}


@router.get("/{agent_id}/reputation", response_model=ReputationOut)
async def get_reputation(
    agent_id: UUID,
    db: DbDep,
    _key: ReadKey,
    events: Annotated[int, Query(ge=0, le=500, description="latest events to include")] = 20,
) -> ReputationOut:
    """The agent's reputation (0.5 everywhere before its first computation) and latest events."""

    async def work(conn: asyncpg.Connection) -> ReputationOut:
        if not await agents_repo.exists_many(conn, [agent_id]):
            raise NotFound(f"no agent with id {agent_id}")
        row = await repo.reputation(conn, agent_id)
        history = await repo.reputation_events(conn, agent_id, events) if events else []
        return ReputationOut.model_validate(
            {
                **(row or _UNSCORED),
                "agent_id": agent_id,
                "computed": row is not None,
                "events": history,
            }
        )

    return await read(db, work)
