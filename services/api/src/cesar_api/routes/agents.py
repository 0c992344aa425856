"""/api/v1/agents: create, list, get, update (PATCH), heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Query, status
from pydantic import BaseModel, Field

from cesar_api.database import read, write
from cesar_api.deps import DbDep, ReadKey, WriteKey
from cesar_api.errors import NotFound
from cesar_api.pagination import Page, decode_cursor, next_cursor
from cesar_api.repositories import agents as repo
from cesar_api.schemas import Cursor, Limit, Name, NoNullsModel, StrictModel

__all__ = ["AgentOut", "router"]

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])

AgentStatus = Literal["active", "idle", "busy", "offline", "error"]
Capability = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]


class AgentIn(StrictModel):
    name: Name
    agent_type: Name
    status: AgentStatus = "idle"
    description: str | None = Field(default=None, max_length=4000)
    capabilities: list[Capability] = Field(default_factory=list, max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class AgentUpdate(NoNullsModel):
    nullable_fields: ClassVar[frozenset[str]] = frozenset({"description"})

    name: Name | None = None
    agent_type: Name | None = None
    status: AgentStatus | None = None
    description: str | None = Field(default=None, max_length=4000)
    capabilities: list[Capability] | None = Field(default=None, max_length=100)
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class HeartbeatIn(StrictModel):
    status: AgentStatus | None = None


class AgentOut(BaseModel):
    id: UUID
    name: str
    agent_type: str
    status: str
    description: str | None
    capabilities: list[str]
    config: dict[str, Any]
    metadata: dict[str, Any]
    last_heartbeat_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AgentPage(Page):
    items: list[AgentOut]


def _found(row: dict[str, Any] | None, agent_id: UUID) -> AgentOut:
    if not row:
        raise NotFound(f"no agent with id {agent_id}")
    return AgentOut.model_validate(row)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgentOut)
async def create_agent(body: AgentIn, db: DbDep, _key: WriteKey) -> AgentOut:
    """Register an agent; 409 when the name is taken."""
    values = body.model_dump()
    row = await write(db, lambda conn: repo.create(conn, values))
    return AgentOut.model_validate(row)


@router.get("", response_model=AgentPage)
async def list_agents(
    db: DbDep,
    _key: ReadKey,
    agent_type: Annotated[str | None, Query(max_length=200)] = None,
    status: AgentStatus | None = None,
    capability: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AgentPage:
    """Agents, newest first, filtered by type, status or capability."""
    before = decode_cursor(cursor)
    rows = await read(
        db,
        lambda conn: repo.list_agents(
            conn,
            agent_type=agent_type,
            status=status,
            capability=capability,
            before=before,
            limit=limit,
        ),
    )
    return AgentPage(
        items=[AgentOut.model_validate(r) for r in rows], next_cursor=next_cursor(rows, limit)
    )


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: UUID, db: DbDep, _key: ReadKey) -> AgentOut:
    return _found(await read(db, lambda conn: repo.get(conn, agent_id)), agent_id)


@router.patch("/{agent_id}", response_model=AgentOut)
async def update_agent(agent_id: UUID, body: AgentUpdate, db: DbDep, _key: WriteKey) -> AgentOut:
    """Change only the fields given; 409 when renaming to a taken name."""
    changes = body.model_dump(exclude_unset=True)
    row = await write(db, lambda conn: repo.update(conn, agent_id, changes))
    return _found(row, agent_id)


@router.post("/{agent_id}/heartbeat", response_model=AgentOut)
async def heartbeat(
    agent_id: UUID,
    db: DbDep,
    _key: WriteKey,
    body: Annotated[HeartbeatIn | None, Body()] = None,
) -> AgentOut:
    """Record that the agent is alive (and optionally its status)."""
    new_status = body.status if body else None
    row = await write(db, lambda conn: repo.heartbeat(conn, agent_id, new_status))
    return _found(row, agent_id)
