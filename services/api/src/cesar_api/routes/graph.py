"""/api/v1/graph: the knowledge graph.

Writes (one transaction per request, upserts on natural keys): ``POST /batch`` with entities,
relations and observations together, or ``POST /entities``, ``/relations``, ``/observations``.
Reads: entities by name (or alias) and type, one entity with its latest observations, the
neighbours of an entity up to ``depth`` hops, the shortest path between two entities.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from cesar_core import graph
from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field, model_validator

from cesar_api.database import read, write
from cesar_api.deps import DbDep, ReadKey, WriteKey
from cesar_api.errors import InvalidInput, NotFound
from cesar_api.repositories import graph as repo
from cesar_api.schemas import Flag, Name, Number, StrictModel, Timestamp

__all__ = ["MAX_DEPTH", "MAX_PATH_DEPTH", "router"]

router = APIRouter(prefix="/api/v1/graph", tags=["graph"])

MAX_DEPTH = 4
MAX_PATH_DEPTH = 6
# a traversal that would take longer is refused (422), not left to load the database
TRAVERSAL_TIMEOUT = "5s"

Direction = Literal["out", "in", "both"]
Unit = Annotated[Number, Field(ge=0, le=1)]
Text = Annotated[str, Field(max_length=4000)]


class EntityRef(StrictModel):
    """An entity by ``id``, or by ``entity_type`` and ``name``."""

    id: UUID | None = None
    entity_type: Name | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _one_way(self) -> EntityRef:
        by_name = self.entity_type is not None and self.name is not None
        if (self.id is not None) == by_name or (
            self.id is None and (self.entity_type is None) != (self.name is None)
        ):
            raise ValueError("give either id, or entity_type and name")
        return self


class EntityIn(StrictModel):
    entity_type: Name
    name: Name
    description: Text | None = None
    aliases: list[Name] = Field(default_factory=list, max_length=100)
    properties: dict[str, Any] = Field(default_factory=dict)
    confidence: Unit = 1.0
    source: Name | None = None
    agent_id: UUID | None = Field(default=None, description="the agent that asserts it")


class RelationIn(StrictModel):
    source: EntityRef
    target: EntityRef
    relation_type: Name
    weight: Annotated[Number, Field(ge=0)] = 1.0
    confidence: Unit = 1.0
    properties: dict[str, Any] = Field(default_factory=dict)
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    agent_id: UUID | None = None

    @model_validator(mode="after")
    def _valid_interval(self) -> RelationIn:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class ObservationIn(StrictModel):
    entity: EntityRef
    content: Annotated[str, Field(min_length=1, max_length=10_000)]
    source: Name | None = None
    confidence: Unit = 1.0
    agent_id: UUID | None = None
    observed_at: Timestamp | None = None


class GraphBatch(StrictModel):
    entities: list[EntityIn] = Field(default_factory=list, max_length=1000)
    relations: list[RelationIn] = Field(default_factory=list, max_length=1000)
    observations: list[ObservationIn] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _not_empty(self) -> GraphBatch:
        if not (self.entities or self.relations or self.observations):
            raise ValueError("give at least one entity, relation or observation")
        return self


class EntitiesIn(StrictModel):
    entities: list[EntityIn] = Field(min_length=1, max_length=1000)


class RelationsIn(StrictModel):
    relations: list[RelationIn] = Field(min_length=1, max_length=1000)


class ObservationsIn(StrictModel):
    observations: list[ObservationIn] = Field(min_length=1, max_length=1000)


class EntityOut(BaseModel):
    id: UUID
    entity_type: str
    name: str
    description: str | None
    aliases: list[str]
    properties: dict[str, Any]
    confidence: float
    source: str | None
    created_by_agent_id: UUID | None
    created_at: datetime
    updated_at: datetime


class RelationOut(BaseModel):
    id: UUID
    source_id: UUID
    target_id: UUID
    relation_type: str
    weight: float
    confidence: float
    properties: dict[str, Any]
    valid_from: datetime | None
    valid_to: datetime | None
    created_by_agent_id: UUID | None
    created_at: datetime
    updated_at: datetime


class ObservationOut(BaseModel):
    id: UUID
    entity_id: UUID
    relation_id: UUID | None
    agent_id: UUID | None
    content: str
    source: str | None
    confidence: float
    observed_at: datetime
    created_at: datetime


class BatchOut(BaseModel):
    entities: list[EntityOut]
    relations: list[RelationOut]
    observations: list[ObservationOut]
    observations_created: int = Field(description="new observations (the rest were known)")


class EntityList(BaseModel):
    items: list[EntityOut]


class EntityDetail(EntityOut):
    observations: list[ObservationOut]


class Neighbour(EntityOut):
    depth: int = Field(description="hops from the start entity (the shortest way)")


class NeighboursOut(BaseModel):
    entity: EntityOut
    depth: int
    neighbours: list[Neighbour]
    relations: list[RelationOut] = Field(description="relations among these entities")


class PathOut(BaseModel):
    found: bool
    length: int | None = Field(description="hops, when found")
    entities: list[EntityOut] = Field(description="from the start to the end, in order")
    relations: list[RelationOut] = Field(description="the relation of each hop, in order")


def _entity_values(entity: EntityIn) -> dict[str, Any]:
    return entity.model_dump()


def _ref(ref: EntityRef) -> dict[str, Any]:
    return ref.model_dump()


def _relation_values(relation: RelationIn) -> dict[str, Any]:
    values = relation.model_dump(exclude={"source", "target"})
    return {**values, "source": _ref(relation.source), "target": _ref(relation.target)}


def _observation_values(observation: ObservationIn) -> dict[str, Any]:
    values = observation.model_dump(exclude={"entity"})
    return {**values, "entity": _ref(observation.entity)}


async def _apply(db: Any, batch: GraphBatch) -> BatchOut:
    entities = [_entity_values(e) for e in batch.entities]
    relations = [_relation_values(r) for r in batch.relations]
    observations = [_observation_values(o) for o in batch.observations]
    result = await write(
        db,
        lambda conn: repo.apply_batch(
            conn,
            entities=[dict(e) for e in entities],
            relations=[dict(r) for r in relations],
            observations=[dict(o) for o in observations],
        ),
    )
    return BatchOut.model_validate(result)


_WRITE_DOC = "One transaction: all of it is stored, or (4xx) none of it."


@router.post("/batch", response_model=BatchOut, status_code=status.HTTP_200_OK)
async def write_batch(body: GraphBatch, db: DbDep, _key: WriteKey) -> BatchOut:
    """Upsert entities, then relations, then observations. Relations and observations name
    entities by id or by entity_type and name (of this batch or already stored)."""
    return await _apply(db, body)


@router.post("/entities", response_model=BatchOut, description=_WRITE_DOC)
async def upsert_entities(body: EntitiesIn, db: DbDep, _key: WriteKey) -> BatchOut:
    """Upsert entities on (entity_type, name)."""
    return await _apply(db, GraphBatch(entities=body.entities))


@router.post("/relations", response_model=BatchOut, description=_WRITE_DOC)
async def upsert_relations(body: RelationsIn, db: DbDep, _key: WriteKey) -> BatchOut:
    """Upsert relations on (source, target, relation_type)."""
    return await _apply(db, GraphBatch(relations=body.relations))


@router.post("/observations", response_model=BatchOut, description=_WRITE_DOC)
async def add_observations(body: ObservationsIn, db: DbDep, _key: WriteKey) -> BatchOut:
    """Add observations (the same text on the same entity is stored once)."""
    return await _apply(db, GraphBatch(observations=body.observations))


@router.get("/entities", response_model=EntityList)
async def find_entities(
    db: DbDep,
    _key: ReadKey,
    name: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    entity_type: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EntityList:
    """Entities by exact name (or alias), by type, or both."""
    if name is None and entity_type is None:
        raise InvalidInput("query: give name, entity_type or both")
    rows = await read(
        db, lambda conn: graph.find_entities(conn, name=name, entity_type=entity_type, limit=limit)
    )
    return EntityList(items=[EntityOut.model_validate(r) for r in rows])


async def _entity(conn: asyncpg.Connection, entity_id: UUID) -> dict[str, Any]:
    row = await graph.get_entity(conn, entity_id)
    if row is None:
        raise NotFound(f"no entity with id {entity_id}")
    return row


@router.get("/entities/{entity_id}", response_model=EntityDetail)
async def get_entity(
    entity_id: UUID,
    db: DbDep,
    _key: ReadKey,
    observations: Annotated[int, Query(ge=0, le=500)] = 50,
) -> EntityDetail:
    """One entity and its latest observations."""

    async def work(conn: asyncpg.Connection) -> EntityDetail:
        row = await _entity(conn, entity_id)
        seen = await graph.observations_of(conn, entity_id, observations) if observations else []
        return EntityDetail.model_validate({**row, "observations": seen})

    return await read(db, work)


async def _bounded(conn: asyncpg.Connection) -> None:
    # SET LOCAL: pooled connections are reused, and only a transaction-scoped SET is undone
    await conn.execute(f"SET LOCAL statement_timeout = '{TRAVERSAL_TIMEOUT}'")


def _too_big(what: str) -> InvalidInput:
    return InvalidInput(
        f"{what} took longer than {TRAVERSAL_TIMEOUT}; ask for a smaller depth or one relation_type"
    )


@router.get("/entities/{entity_id}/neighbours", response_model=NeighboursOut)
async def get_neighbours(
    entity_id: UUID,
    db: DbDep,
    _key: ReadKey,
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH, description=f"hops, 1..{MAX_DEPTH}")] = 1,
    direction: Direction = "both",
    relation_type: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    include_relations: Flag = True,
) -> NeighboursOut:
    """Entities within ``depth`` hops (following relations out, in, or both ways), nearest
    first, and the relations among them."""

    async def work(conn: asyncpg.Connection) -> NeighboursOut:
        start = await _entity(conn, entity_id)
        await _bounded(conn)
        try:
            found = await graph.neighbours(
                conn,
                entity_id,
                depth=depth,
                direction=direction,
                relation_type=relation_type,
                limit=limit,
            )
        except asyncpg.QueryCanceledError as exc:
            raise _too_big("the neighbourhood") from exc
        relations: list[dict[str, Any]] = []
        if include_relations:
            ids = [entity_id, *(n["id"] for n in found)]
            relations = await graph.relations_among(conn, ids, relation_type, 5 * limit)
        return NeighboursOut.model_validate(
            {"entity": start, "depth": depth, "neighbours": found, "relations": relations}
        )

    return await write(db, work)  # a (read-only) transaction, so that SET LOCAL applies


@router.get("/path", response_model=PathOut)
async def get_path(
    db: DbDep,
    _key: ReadKey,
    source: Annotated[UUID, Query(alias="from", description="the start entity's id")],
    target: Annotated[UUID, Query(alias="to", description="the end entity's id")],
    max_depth: Annotated[
        int, Query(ge=1, le=MAX_PATH_DEPTH, description=f"hops, 1..{MAX_PATH_DEPTH}")
    ] = 4,
    direction: Direction = "both",
    relation_type: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> PathOut:
    """A shortest path from one entity to another within ``max_depth`` hops
    (``found: false`` when there is none)."""

    async def work(conn: asyncpg.Connection) -> PathOut:
        await _entity(conn, source)
        await _entity(conn, target)
        if source == target:
            start = await _entity(conn, source)
            return PathOut(
                found=True, length=0, entities=[EntityOut.model_validate(start)], relations=[]
            )
        await _bounded(conn)
        try:
            path = await graph.shortest_path(
                conn,
                source,
                target,
                max_depth=max_depth,
                direction=direction,
                relation_type=relation_type,
            )
        except asyncpg.QueryCanceledError as exc:
            raise _too_big("the path search") from exc
        if path is None:
            return PathOut(found=False, length=None, entities=[], relations=[])
        entity_ids, relation_ids = path
        entities = {e["id"]: e for e in await graph.entities_by_ids(conn, entity_ids)}
        relations = {r["id"]: r for r in await graph.relations_by_ids(conn, relation_ids)}
        return PathOut.model_validate(
            {
                "found": True,
                "length": len(relation_ids),
                "entities": [entities[i] for i in entity_ids],
                "relations": [relations[i] for i in relation_ids],
            }
        )

    return await write(db, work)  # a (read-only) transaction, so that SET LOCAL applies
