"""The ``graph.extract`` workflow step: the LLM reads a text, the graph keeps what it found.

Step: ``{"kind": "graph.extract", "model": "...", "text": "{{input.text}}"}`` (optional
``source``, ``agent_id``, ``max_entities``). The model is asked, through the LLM proxy, for JSON
``{"entities": [{"name", "type", "description"}], "relations": [{"source", "target",
"type"}]}``; entities are upserted on (type, name), relations between them on (source, target,
type), an entity's description is kept as an observation, all in one transaction. Relations
naming an entity the model did not list are skipped and counted. Idempotent (upserts), so a
re-run of the step adds nothing twice.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from uuid import UUID

import asyncpg
from cesar_core import graph
from cesar_core.jobs.registry import JobContext, PermanentJobError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cesar_worker.jobs.llm import generate

__all__ = ["PROMPT", "GraphExtractStep", "run_graph_extract"]

PROMPT = """Extract the knowledge graph of the text below. Answer with JSON only, exactly:
{{"entities": [{{"name": "...", "type": "person|organization|place|concept|...", "description": "one sentence"}}],
 "relations": [{{"source": "entity name", "target": "entity name", "type": "verb_phrase"}}]}}
Use at most {max_entities} entities; relations only between listed entities.

Text:
{text}"""


class GraphExtractStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    kind: Literal["graph.extract"]
    model: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=100_000)
    source: str = Field(default="graph.extract", min_length=1, max_length=200)
    agent_id: UUID | None = None
    max_entities: int = Field(default=50, ge=1, le=500)


class _Entity(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)


class _Relation(BaseModel):
    source: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)


class _Extraction(BaseModel):
    entities: list[_Entity] = Field(default_factory=list)
    relations: list[_Relation] = Field(default_factory=list)


def _parse(answer: str, max_entities: int) -> _Extraction:
    try:
        extraction = _Extraction.model_validate(json.loads(answer))
    except (ValueError, ValidationError) as exc:
        raise PermanentJobError(
            f"graph.extract: the model's answer is not the expected JSON ({exc}); "
            f"answer began: {answer[:200]!r}"
        ) from exc
    extraction.entities = extraction.entities[:max_entities]
    return extraction


async def _store(
    conn: asyncpg.Connection, step: GraphExtractStep, found: _Extraction
) -> dict[str, Any]:
    ids: dict[str, UUID] = {}
    for entity in found.entities:
        row = await graph.upsert_entity(
            conn,
            entity_type=entity.type.strip().lower(),
            name=entity.name.strip(),
            source=step.source,
            agent_id=step.agent_id,
        )
        ids[entity.name.strip().casefold()] = row["id"]
        if entity.description and entity.description.strip():
            await graph.add_observation(
                conn,
                entity_id=row["id"],
                content=entity.description.strip(),
                source=step.source,
                agent_id=step.agent_id,
            )
    stored, skipped = 0, 0
    for relation in found.relations:
        source_id = ids.get(relation.source.strip().casefold())
        target_id = ids.get(relation.target.strip().casefold())
        if source_id is None or target_id is None or source_id == target_id:
            skipped += 1
            continue
        await graph.upsert_relation(
            conn,
            source_id=source_id,
            target_id=target_id,
            relation_type=relation.type.strip().lower().replace(" ", "_"),
            agent_id=step.agent_id,
        )
        stored += 1
    return {
        "entities": len(ids),
        "relations": stored,
        "skipped_relations": skipped,
        "entity_ids": sorted(str(i) for i in ids.values()),
    }


async def run_graph_extract(ctx: JobContext, step: GraphExtractStep) -> dict[str, Any]:
    prompt = PROMPT.format(max_entities=step.max_entities, text=step.text)
    data = await generate(
        ctx, model=step.model, prompt=prompt, format="json", options={"temperature": 0}
    )
    found = _parse(str(data.get("response", "")), step.max_entities)
    result = await ctx.db.transaction(lambda conn: _store(conn, step, found))
    return {**result, "model": data.get("model", step.model)}
