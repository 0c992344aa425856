"""/api/v1/agents/{agent_id}/memories: store, list, get, recall, associate; replay sessions.

Recall ranks the agent's memories with the documented score of :mod:`cesar_core.memory`
(text match, importance, recency), counts the access of what it returns, and records what was
recalled together as a ``memory.recalled`` agent event, which the ``memory.consolidate`` job
turns into stronger associations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from cesar_core.memory import recall_score, tokens
from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from cesar_api.database import read, write
from cesar_api.deps import DbDep, ReadKey, WriteKey
from cesar_api.errors import InvalidInput, NotFound
from cesar_api.pagination import Page, decode_cursor, next_cursor
from cesar_api.repositories import agents as agents_repo
from cesar_api.repositories import memories as repo
from cesar_api.schemas import Cursor, Flag, Limit, Number, StrictModel

__all__ = ["MemoryOut", "router"]

router = APIRouter(prefix="/api/v1/agents", tags=["memories"])

MemoryType = Literal["episodic", "semantic", "procedural", "working"]
AssociationType = Literal["related", "causal", "temporal", "contradicts", "generalizes"]
Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
Unit = Annotated[Number, Field(ge=0, le=1)]
MAX_QUERY_TOKENS = 50


class MemoryIn(StrictModel):
    content: str = Field(min_length=1, max_length=20_000)
    memory_type: MemoryType = "episodic"
    summary: str | None = Field(default=None, max_length=4000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    metadata: dict[str, Any] = Field(default_factory=dict)
    importance: Unit = 0.5
    decay_rate: Annotated[Number, Field(ge=0, le=1)] = 0.01
    source_event_id: UUID | None = None


class MemoryOut(BaseModel):
    id: UUID
    agent_id: UUID
    memory_type: str
    content: str
    summary: str | None
    tags: list[str]
    metadata: dict[str, Any]
    source_event_id: UUID | None
    importance: float
    strength: float
    decay_rate: float
    access_count: int
    last_accessed_at: datetime | None
    is_consolidated: bool
    is_archived: bool
    created_at: datetime
    updated_at: datetime


class AssociationIn(StrictModel):
    target_memory_id: UUID
    association_type: AssociationType = "related"
    strength: Unit = 0.5


class AssociationOut(BaseModel):
    source_memory_id: UUID
    target_memory_id: UUID
    association_type: str
    strength: float
    co_activations: int
    created_at: datetime
    updated_at: datetime


class MemoryDetail(MemoryOut):
    associations: list[AssociationOut]


class MemoryPage(Page):
    items: list[MemoryOut]


class RecallIn(StrictModel):
    query: str | None = Field(
        default=None, max_length=2000, description="text to match; its words are scored"
    )
    tags: list[Tag] = Field(default_factory=list, max_length=50, description="all of these")
    memory_type: MemoryType | None = None
    min_importance: Unit = 0.0
    include_archived: Flag = False
    limit: int = Field(default=10, ge=1, le=100)


class RecallHit(BaseModel):
    score: float = Field(description="0.6 text + 0.25 importance + 0.15 recency")
    text_match: float
    recency: float
    memory: MemoryOut


class RecallOut(BaseModel):
    items: list[RecallHit]
    candidates: int = Field(description="memories that passed the filters and were scored")


class ReplaySessionsOut(BaseModel):
    sessions: list[dict[str, Any]]
    consolidations: list[dict[str, Any]]


async def _agent_or_404(conn: asyncpg.Connection, agent_id: UUID) -> None:
    if not await agents_repo.exists_many(conn, [agent_id]):
        raise NotFound(f"no agent with id {agent_id}")


@router.post("/{agent_id}/memories", status_code=status.HTTP_201_CREATED, response_model=MemoryOut)
async def store_memory(agent_id: UUID, body: MemoryIn, db: DbDep, _key: WriteKey) -> MemoryOut:
    """Store one memory of the agent (404 when the agent does not exist)."""
    values = body.model_dump()

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        await _agent_or_404(conn, agent_id)
        return await repo.create(conn, agent_id, values)

    return MemoryOut.model_validate(await write(db, work))


@router.get("/{agent_id}/memories", response_model=MemoryPage)
async def list_memories(
    agent_id: UUID,
    db: DbDep,
    _key: ReadKey,
    memory_type: MemoryType | None = None,
    tag: Annotated[list[str] | None, Query(max_length=50, description="all of these")] = None,
    include_archived: bool = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MemoryPage:
    """The agent's memories, newest first (no access is counted; use recall for that)."""
    before = decode_cursor(cursor)

    async def work(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        await _agent_or_404(conn, agent_id)
        return await repo.list_memories(
            conn,
            agent_id,
            memory_type=memory_type,
            tags=tag or [],
            include_archived=include_archived,
            before=before,
            limit=limit,
        )

    rows = await read(db, work)
    return MemoryPage(
        items=[MemoryOut.model_validate(r) for r in rows], next_cursor=next_cursor(rows, limit)
    )


@router.post("/{agent_id}/memories/recall", response_model=RecallOut)
async def recall(agent_id: UUID, body: RecallIn, db: DbDep, _key: WriteKey) -> RecallOut:
    """The best memories for a query, tags, type and importance, ranked by the recall score.

    With a query, only memories sharing at least one of its words are returned. Recalled
    memories get ``access_count + 1`` and ``last_accessed_at = now()``.
    """
    query = sorted(tokens(body.query)) if body.query else []
    if body.query is not None and not query:
        raise InvalidInput("body.query: has no words to match (letters or digits)")
    if len(query) > MAX_QUERY_TOKENS:
        raise InvalidInput(f"body.query: more than {MAX_QUERY_TOKENS} distinct words")
    wanted = frozenset(query)

    async def work(conn: asyncpg.Connection) -> tuple[list[RecallHit], int]:
        await _agent_or_404(conn, agent_id)
        rows = await repo.recall_candidates(
            conn,
            agent_id,
            query_tokens=query,
            memory_type=body.memory_type,
            tags=body.tags,
            min_importance=body.min_importance,
            include_archived=body.include_archived,
        )
        scored = []
        for row in rows:
            touched = row["last_accessed_at"] or row["created_at"]
            result = recall_score(
                query=wanted,
                content=row["content"],
                summary=row["summary"],
                tags=row["tags"],
                importance=float(row["importance"]),
                last_touched=max(touched, row["created_at"]),
                now=row["db_now"],
            )
            if wanted and result.text == 0:
                continue
            scored.append((result, row))
        # best score first; ties: newer first, then the smaller id
        scored.sort(key=lambda p: (-p[0].score, -p[1]["created_at"].timestamp(), str(p[1]["id"])))
        top = scored[: body.limit]
        hits = [
            RecallHit(
                score=r.score,
                text_match=r.text,
                recency=r.recency,
                memory=MemoryOut.model_validate(row),
            )
            for r, row in top
        ]
        if top:
            await repo.mark_recalled(
                conn,
                agent_id,
                [row["id"] for _, row in top],
                {"query": body.query, "tags": body.tags},
            )
        return hits, len(scored)

    hits, candidates = await write(db, work)
    return RecallOut(items=hits, candidates=candidates)


@router.get("/{agent_id}/memories/{memory_id}", response_model=MemoryDetail)
async def get_memory(agent_id: UUID, memory_id: UUID, db: DbDep, _key: ReadKey) -> MemoryDetail:
    """One memory with its associations (both directions, strongest first)."""

    async def work(conn: asyncpg.Connection) -> MemoryDetail:
        row = await repo.get(conn, agent_id, memory_id)
        if row is None:
            raise NotFound(f"agent {agent_id} has no memory {memory_id}")
        links = await repo.associations_of(conn, memory_id)
        return MemoryDetail.model_validate({**row, "associations": links})

    return await read(db, work)


@router.post(
    "/{agent_id}/memories/{memory_id}/associations",
    status_code=status.HTTP_201_CREATED,
    response_model=AssociationOut,
)
async def associate(
    agent_id: UUID, memory_id: UUID, body: AssociationIn, db: DbDep, _key: WriteKey
) -> AssociationOut:
    """Link this memory to another of the same agent (an existing link is updated)."""
    if body.target_memory_id == memory_id:
        raise InvalidInput("body.target_memory_id: a memory cannot be associated with itself")

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        if await repo.get(conn, agent_id, memory_id) is None:
            raise NotFound(f"agent {agent_id} has no memory {memory_id}")
        if await repo.get(conn, agent_id, body.target_memory_id) is None:
            raise NotFound(
                f"body.target_memory_id: agent {agent_id} has no memory {body.target_memory_id}"
            )
        return await repo.link(
            conn, memory_id, body.target_memory_id, body.association_type, body.strength
        )

    return AssociationOut.model_validate(await write(db, work))


@router.get("/{agent_id}/replay-sessions", response_model=ReplaySessionsOut)
async def replay_sessions(
    agent_id: UUID,
    db: DbDep,
    _key: ReadKey,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ReplaySessionsOut:
    """The agent's latest ``memory.consolidate`` runs and the merges and decays they made."""

    async def work(conn: asyncpg.Connection) -> ReplaySessionsOut:
        await _agent_or_404(conn, agent_id)
        sessions, consolidations = await repo.replay_sessions(conn, agent_id, limit)
        return ReplaySessionsOut(sessions=sessions, consolidations=consolidations)

    return await read(db, work)
