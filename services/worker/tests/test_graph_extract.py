"""The ``graph.extract`` workflow step against the fake Ollama upstream and real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from cesar_core.db import Database
from cesar_core.jobs import JobStatus
from cesar_core.jobs.dispatch import arq_job_id
from cesar_ollama_proxy.testing.fake_ollama import FakeOllama
from cesar_worker.config import WorkerConfig
from cesar_worker.runtime import WorkerRuntime

from .conftest import FakeClock

MODEL = "llama3.2:1b"
TEXT = "Ada Lovelace worked with Charles Babbage on the Analytical Engine in London."
EXTRACTION = {
    "entities": [
        {"name": "Ada Lovelace", "type": "Person", "description": "a mathematician"},
        {"name": "Charles Babbage", "type": "person"},
        {"name": "Analytical Engine", "type": "concept", "description": "a mechanical computer"},
    ],
    "relations": [
        {"source": "Ada Lovelace", "target": "Charles Babbage", "type": "worked with"},
        {"source": "Charles Babbage", "target": "analytical engine", "type": "designed"},
        {"source": "Ada Lovelace", "target": "London", "type": "lived_in"},  # not listed
    ],
}


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    server = FakeOllama()
    async with server.serve():
        yield server


@pytest_asyncio.fixture
async def rt(
    config: WorkerConfig,
    db: Database,
    redis: Any,
    registry: Any,
    clock: FakeClock,
    arq_cleanup: None,
    fake: FakeOllama,
) -> AsyncIterator[WorkerRuntime]:
    cfg = config.model_copy(update={"ollama_url": fake.url})
    runtime = WorkerRuntime(cfg, db, redis, registry, clock=clock, rand=lambda: 0.5)
    await runtime.start(serve_metrics=False)
    yield runtime
    await runtime.stop()


async def _workflow(rt: WorkerRuntime, db: Database, text: str) -> Any:
    definition = {
        "steps": [
            {"name": "extract", "kind": "graph.extract", "model": MODEL, "text": "{{input.text}}"}
        ]
    }
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO workflow_templates (name, definition) VALUES ('kg', CAST($1 AS JSONB)) "
            "ON CONFLICT DO NOTHING",
            json.dumps(definition),
        )
    job = await rt.queue.enqueue(
        "workflow.execute", {"template_name": "kg", "input": {"text": text}}
    )
    job = await rt.queue.get(job.id)
    await rt.executor.run(arq_job_id(job.id, job.dispatch_token or ""))
    await rt.mirror.drain()
    return await rt.queue.get(job.id)


async def test_extracts_entities_and_relations_into_the_graph(
    rt: WorkerRuntime, db: Database, fake: FakeOllama
) -> None:
    fake.config.canned_responses = {TEXT: json.dumps(EXTRACTION)}
    job = await _workflow(rt, db, TEXT)
    assert job.status == JobStatus.SUCCEEDED, job.last_error
    output = job.result["output"]["steps"]["extract"]
    assert (output["entities"], output["relations"], output["skipped_relations"]) == (3, 2, 1)

    [(path, body)] = fake.bodies
    assert path == "/api/generate"
    assert body["model"] == MODEL and body["format"] == "json" and TEXT in body["prompt"]

    async with db.connection() as conn:
        entities = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT entity_type, name, source FROM kg_entities ORDER BY name"
            )
        ]
        relations = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT s.name, r.relation_type, t.name FROM kg_relations r "
                "JOIN kg_entities s ON s.id = r.source_id JOIN kg_entities t ON t.id = r.target_id "
                "ORDER BY s.name"
            )
        ]
        observations = [
            r[0] for r in await conn.fetch("SELECT content FROM kg_observations ORDER BY content")
        ]
    assert entities == [
        ("person", "Ada Lovelace", "graph.extract"),
        ("concept", "Analytical Engine", "graph.extract"),
        ("person", "Charles Babbage", "graph.extract"),
    ]
    assert relations == [
        ("Ada Lovelace", "worked_with", "Charles Babbage"),
        ("Charles Babbage", "designed", "Analytical Engine"),
    ]
    assert sorted(observations) == ["a mathematician", "a mechanical computer"]

    # the same text again (another execution): nothing is stored twice
    again = await _workflow(rt, db, TEXT)
    assert again.status == JobStatus.SUCCEEDED
    async with db.connection() as conn:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM kg_entities) AS e, (SELECT count(*) FROM kg_relations) "
            "AS r, (SELECT count(*) FROM kg_observations) AS o"
        )
    assert tuple(counts) == (3, 2, 2)


async def test_an_answer_that_is_not_the_json_fails_the_step_clearly(
    rt: WorkerRuntime, db: Database, fake: FakeOllama
) -> None:
    text = f"nothing to see {uuid.uuid4()}"
    fake.config.canned_responses = {text: "Sure! Here are the entities: Ada"}
    job = await _workflow(rt, db, text)
    assert job.status == JobStatus.FAILED  # permanent: asking again gives the same answer
    assert "not the expected JSON" in (job.last_error or "")
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM kg_entities") == 0
