"""memory.consolidate and reputation.compute against real PostgreSQL and Redis: exact results."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from cesar_core.db import Database
from cesar_core.jobs import JobRegistry, JobStatus
from cesar_core.jobs.builtin import MemoryConsolidatePayload
from cesar_core.jobs.dispatch import arq_job_id
from cesar_core.jobs.registry import JobContext
from cesar_core.redis import RedisClient
from cesar_worker.config import WorkerConfig
from cesar_worker.jobs import memory
from cesar_worker.runtime import WorkerRuntime
from cesar_worker.schedule import SCHEDULED_JOBS, scheduled_job_crons, schedules

from .conftest import FakeClock

AGENT = uuid.UUID("aaaaaaaa-0000-4000-8000-000000000001")
M = {n: uuid.UUID(f"00000000-0000-4000-8000-00000000000{n}") for n in range(1, 10)}
AS_OF = "2030-01-10T00:00:00+00:00"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest_asyncio.fixture
async def rt(
    config: WorkerConfig,
    db: Database,
    redis: RedisClient,
    registry: JobRegistry,
    clock: FakeClock,
    arq_cleanup: None,
) -> AsyncIterator[WorkerRuntime]:
    runtime = WorkerRuntime(config, db, redis, registry, clock=clock, rand=lambda: 0.5)
    await runtime.start(serve_metrics=False)
    yield runtime
    await runtime.stop()


async def run(rt: WorkerRuntime, job_type: str, payload: dict[str, Any]) -> Any:
    job = await rt.queue.enqueue(job_type, payload)
    outcome = await rt.executor.run(arq_job_id(job.id, job.dispatch_token or ""))
    await rt.mirror.drain()
    done = await rt.queue.get(job.id)
    assert outcome == "succeeded", done.last_error
    return done


MEMORIES = """
INSERT INTO agents (id, name, agent_type) VALUES ($1, 'rememberer', 'general');
"""
INSERT_MEMORY = """
INSERT INTO agent_memories (id, agent_id, memory_type, content, tags, importance, decay_rate,
                            is_consolidated, last_accessed_at, access_count, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""
INSERT_RECALL = """
INSERT INTO agent_events (agent_id, event_type, payload, occurred_at)
VALUES ($1, 'memory.recalled', CAST($2 AS JSONB), $3)
"""


async def seed_memories(db: Database) -> None:
    rows = [
        # id, type, content, tags, importance, decay, consolidated, accessed, count, created
        (
            1,
            "episodic",
            "The deploy failed because the disk was full",
            [],
            0.4,
            0.01,
            False,
            None,
            1,
            "2030-01-09T01:00:00",
        ),
        (
            2,
            "episodic",
            "the deploy failed because the disk was full!",
            ["ops"],
            0.7,
            0.01,
            False,
            "2030-01-09T04:00:00",
            2,
            "2030-01-09T02:00:00",
        ),
        (
            3,
            "episodic",
            "Deploy failed: disk was full on node 3",
            [],
            0.5,
            0.01,
            False,
            "2030-01-09T06:00:00",
            0,
            "2030-01-09T03:00:00",
        ),
        (
            4,
            "semantic",
            "User prefers dark mode",
            [],
            0.5,
            0.1,
            False,
            None,
            0,
            "2030-01-01T00:00:00",
        ),
        (
            6,
            "episodic",
            "weekly report sent to finance",
            ["finance"],
            0.3,
            0.01,
            True,
            "2030-01-09T05:00:00",
            4,
            "2030-01-05T00:00:00",
        ),
        (
            7,
            "episodic",
            "Weekly report sent to finance.",
            ["report"],
            0.6,
            0.01,
            False,
            None,
            1,
            "2030-01-09T05:30:00",
        ),
        # after as_of: not replayed by the first run
        (
            8,
            "episodic",
            "the deploy failed because the disk was full",
            [],
            0.9,
            0.01,
            False,
            None,
            0,
            "2030-01-10T12:00:00",
        ),
    ]
    async with db.connection() as conn:
        await conn.execute(MEMORIES, AGENT)
        for n, kind, content, tags, imp, decay, cons, accessed, count, created in rows:
            await conn.execute(
                INSERT_MEMORY,
                M[n],
                AGENT,
                kind,
                content,
                tags,
                imp,
                decay,
                cons,
                at(accessed) if accessed else None,
                count,
                at(created),
            )
        for ids, when in (
            ([M[3], M[4], M[6]], "2030-01-09T05:00:00"),
            ([M[4], M[3]], "2030-01-09T06:00:00"),
            ([M[1], M[2]], "2030-01-10T06:00:00"),  # after as_of: the next run's
        ):
            payload = json.dumps({"memory_ids": [str(i) for i in ids]})
            await conn.execute(INSERT_RECALL, AGENT, payload, at(when))


async def snapshot(db: Database) -> dict[str, Any]:
    async with db.connection() as conn:
        return {
            "memories": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT id, content, tags, importance, access_count, is_consolidated, "
                    "is_archived, CAST(metadata AS TEXT) AS metadata FROM agent_memories "
                    "ORDER BY created_at, id"
                )
            ],
            "associations": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT source_memory_id, target_memory_id, association_type, strength, "
                    "co_activations FROM memory_associations "
                    "ORDER BY source_memory_id, target_memory_id"
                )
            ],
            "sessions": await conn.fetchval("SELECT COUNT(*) FROM replay_sessions"),
            "episodes": await conn.fetchval("SELECT COUNT(*) FROM replay_episodes"),
            "consolidations": await conn.fetchval("SELECT COUNT(*) FROM memory_consolidations"),
        }


async def test_consolidation_merges_strengthens_decays_and_records(
    rt: WorkerRuntime, db: Database, clock: FakeClock
) -> None:
    await seed_memories(db)
    job = await run(rt, "memory.consolidate", {"agent_id": str(AGENT), "as_of": AS_OF})
    assert job.result["agents"] == 1
    metrics = job.result["runs"][str(AGENT)]
    assert metrics == {
        "as_of": AS_OF,
        "since": None,
        "episodes": 5,
        "merged_groups": 2,
        "memories_merged": 3,
        "kept": 2,
        "associations_strengthened": 3,
        "decayed": 1,
    }
    async with db.connection() as conn:
        rows = {
            r["id"]: dict(r)
            for r in await conn.fetch(
                "SELECT id, memory_type, content, tags, importance, access_count, "
                "is_consolidated, is_archived, metadata FROM agent_memories"
            )
        }
        result_id = next(i for i in rows if i not in M.values())
        merged = rows[result_id]
        # m1 + m2 (Jaccard 1.0) -> one consolidated memory with the oldest one's content
        assert merged["content"] == "The deploy failed because the disk was full"
        assert merged["tags"] == ["ops"] and merged["importance"] == 0.7
        assert merged["access_count"] == 3 and merged["is_consolidated"]
        assert json.loads(merged["metadata"])["consolidated_from"] == [str(M[1]), str(M[2])]
        assert rows[M[1]]["is_archived"] and rows[M[2]]["is_archived"]
        # m3 is only 0.5 similar: kept, now consolidated, not archived
        assert rows[M[3]]["is_consolidated"] and not rows[M[3]]["is_archived"]
        # m7 absorbed by the already consolidated m6
        assert rows[M[7]]["is_archived"]
        assert rows[M[6]]["importance"] == 0.6 and rows[M[6]]["tags"] == ["finance", "report"]
        assert rows[M[6]]["access_count"] == 5
        # m4 unused for 9 days: importance * (1 - 0.1)
        assert rows[M[4]]["importance"] == 0.45 and not rows[M[4]]["is_archived"]
        # m8 was created after as_of
        assert not rows[M[8]]["is_consolidated"] and rows[M[8]]["importance"] == 0.9

        links = {
            (r["source_memory_id"], r["target_memory_id"]): (
                r["association_type"],
                r["strength"],
                r["co_activations"],
            )
            for r in await conn.fetch(
                "SELECT source_memory_id, target_memory_id, association_type, strength, "
                "co_activations FROM memory_associations"
            )
        }
        assert links == {
            (result_id, M[1]): ("generalizes", 1.0, 0),
            (result_id, M[2]): ("generalizes", 1.0, 0),
            (M[6], M[7]): ("generalizes", 1.0, 0),
            (M[3], M[4]): ("related", 0.19, 2),  # recalled together twice
            (M[3], M[6]): ("related", 0.1, 1),
            (M[4], M[6]): ("related", 0.1, 1),
        }
        session = await conn.fetchrow(
            "SELECT id, job_id, strategy, trigger_reason, status, episodes_planned, "
            "episodes_replayed, memories_strengthened, mean_priority FROM replay_sessions"
        )
        assert session["job_id"] == job.id
        assert (session["status"], session["trigger_reason"]) == ("succeeded", "manual")
        assert (session["episodes_planned"], session["episodes_replayed"]) == (5, 5)
        assert session["memories_strengthened"] == 3
        assert session["mean_priority"] == 0.54
        episodes = await conn.fetch(
            "SELECT memory_id, sequence_no, importance_after, outcome FROM replay_episodes "
            "ORDER BY sequence_no"
        )
        assert [e["memory_id"] for e in episodes] == [M[4], M[1], M[2], M[3], M[7]]
        assert [json.loads(e["outcome"])["action"] for e in episodes] == [
            "kept",
            "merged",
            "merged",
            "kept",
            "merged",
        ]
        assert episodes[0]["importance_after"] == 0.45
        consolidations = await conn.fetch(
            "SELECT strategy, source_memory_ids, result_memory_id, memories_in, memories_out "
            "FROM memory_consolidations ORDER BY strategy, memories_in"
        )
        assert [(c["strategy"], c["memories_in"]) for c in consolidations] == [
            ("decay", 1),
            ("merge", 1),
            ("merge", 2),
        ]
        assert consolidations[2]["source_memory_ids"] == [M[1], M[2]]
        assert consolidations[2]["result_memory_id"] == result_id

    # the same job delivered again changes nothing
    before = await snapshot(db)
    ctx = JobContext(
        job=job,
        db=db,
        redis=rt.redis,
        queue=rt.queue,
        settings=rt.config,
        worker_id="again",
        clock=clock,
    )
    again = await memory.consolidate(
        ctx, MemoryConsolidatePayload(agent_id=AGENT, as_of=at("2030-01-10T00:00:00"))
    )
    assert again["runs"][str(AGENT)]["skipped"] == "already consolidated by this job"
    assert await snapshot(db) == before

    # the next run replays m8 (merges into the consolidated result) and counts only the recalls
    # since the previous run's as_of
    second = await run(
        rt, "memory.consolidate", {"agent_id": str(AGENT), "as_of": "2030-01-11T00:00:00Z"}
    )
    metrics = second.result["runs"][str(AGENT)]
    assert metrics["since"] == AS_OF and metrics["episodes"] == 1
    assert metrics["memories_merged"] == 1 and metrics["associations_strengthened"] == 0
    async with db.connection() as conn:
        importance = await conn.fetchval(
            "SELECT importance FROM agent_memories WHERE id = $1", result_id
        )
        archived = await conn.fetchval("SELECT is_archived FROM agent_memories WHERE id = $1", M[8])
    assert importance == 0.9 and archived


async def test_consolidation_of_every_agent_and_unknown_agent(
    rt: WorkerRuntime, db: Database
) -> None:
    await seed_memories(db)
    job = await run(rt, "memory.consolidate", {"as_of": AS_OF})
    assert job.result["agents"] == 1 and job.result["memories_merged"] == 3
    none = await run(rt, "memory.consolidate", {"agent_id": str(uuid.uuid4())})
    assert none.result["agents"] == 0


TASKS = """
INSERT INTO agents (id, name, agent_type) VALUES ($1, 'doer', 'general');
"""
INSERT_TASK = """
INSERT INTO agent_tasks (id, agent_id, job_id, task_type, status, started_at, finished_at)
VALUES ($1, $2, $3, 'work', $4, $5, $6)
"""
INSERT_JOB = """
INSERT INTO job_queue (id, job_type, status, started_at, finished_at)
VALUES ($1, 'maintenance.noop', 'succeeded', $2, $3)
"""


async def test_reputation_from_task_and_job_outcomes(rt: WorkerRuntime, db: Database) -> None:
    t = {n: uuid.UUID(f"10000000-0000-4000-8000-00000000000{n}") for n in range(1, 6)}
    job_id = uuid.UUID("20000000-0000-4000-8000-000000000001")
    async with db.connection() as conn:
        await conn.execute(TASKS, AGENT)
        await conn.execute(INSERT_JOB, job_id, at("2030-01-09T17:59:00"), at("2030-01-09T18:00:00"))
        for n, status, job, started, finished in (
            (1, "succeeded", None, "2030-01-09T00:00:00", "2030-01-09T00:01:00"),
            (2, "failed", None, "2030-01-09T11:59:30", "2030-01-09T12:00:00"),
            (3, "running", job_id, None, None),  # its job finished: the job's outcome counts
            (4, "cancelled", None, "2030-01-09T01:00:00", "2030-01-09T02:00:00"),
            (5, "succeeded", None, "2029-11-01T00:00:00", "2029-11-01T00:01:00"),  # too old
        ):
            await conn.execute(
                INSERT_TASK,
                t[n],
                AGENT,
                job,
                status,
                at(started) if started else None,
                at(finished) if finished else None,
            )
    done = await run(rt, "reputation.compute", {"as_of": AS_OF})
    assert done.result["events"] == 3
    async with db.connection() as conn:
        rep = await conn.fetchrow(
            "SELECT score, reliability, responsiveness, quality, successes, failures, "
            "avg_latency_ms, last_event_at FROM agent_reputation WHERE agent_id = $1",
            AGENT,
        )
        events = await conn.fetch(
            "SELECT event_type, task_id, job_id, delta, score_before, score_after "
            "FROM agent_reputation_events ORDER BY score_before = 0.5 DESC, created_at"
        )
    # the formula of cesar_core.reputation, worked by hand for these three outcomes
    assert dict(rep) == {
        "score": 0.568051,
        "reliability": 0.596176,
        "responsiveness": 0.541381,
        "quality": 0.5,
        "successes": 2,
        "failures": 1,
        "avg_latency_ms": 50000.0,
        "last_event_at": at("2030-01-09T18:00:00"),
    }
    steps = [(e["event_type"], e["task_id"], e["score_before"], e["score_after"]) for e in events]
    assert steps == [
        ("task_success", t[1], 0.5, 0.593515),
        ("task_failure", t[2], 0.593515, 0.510307),
        ("task_success", t[3], 0.510307, 0.568051),
    ]
    assert events[2]["job_id"] == job_id and events[1]["delta"] == -0.083208

    # again at the same as_of: nothing new, nothing written
    again = await run(rt, "reputation.compute", {"as_of": AS_OF})
    assert again.result["events"] == 0
    # an hour later the score drifts by less than 0.001: updated, but no event
    hour = await run(rt, "reputation.compute", {"as_of": "2030-01-10T01:00:00Z"})
    assert hour.result["events"] == 0
    drifted = hour.result["scores"][str(AGENT)]["score"]
    assert 0 < 0.568051 - drifted < 0.001
    # a week later with nothing new: the score drifts, one decay event
    later = await run(rt, "reputation.compute", {"as_of": "2030-01-17T00:00:00Z"})
    assert later.result["events"] == 1
    async with db.connection() as conn:
        kinds = [
            r["event_type"]
            for r in await conn.fetch("SELECT event_type FROM agent_reputation_events")
        ]
        score = await conn.fetchval("SELECT score FROM agent_reputation")
    assert sorted(kinds) == ["decay", "task_failure", "task_success", "task_success"]
    assert score == 0.54902


async def test_scheduled_entries_enqueue_once_while_active(
    rt: WorkerRuntime, config: WorkerConfig
) -> None:
    assert scheduled_job_crons(config, "q:cron", "cesar") == []  # both 0 in the tests' env
    on = config.model_copy(
        update={"memory_consolidate_seconds": 3600, "reputation_compute_seconds": 900}
    )
    crons = scheduled_job_crons(on, "q:cron", "cesar")
    names = [c.name for c in crons]
    assert names == ["q:cron.schedule.memory.consolidate", "q:cron.schedule.reputation.compute"]
    assert (crons[0].minute, crons[0].second) == ({0}, {0})  # hourly
    assert crons[1].minute == {0, 15, 30, 45}
    off = on.model_copy(update={"memory_consolidate_seconds": 0})
    assert [c.name for c in scheduled_job_crons(off, "q", "cesar")] == [
        "q.schedule.reputation.compute"
    ]
    by_name = {s.name: s for s in schedules(on)}
    consolidate = by_name["schedule.memory.consolidate"]
    (first,) = await consolidate.enqueue(rt)
    (second,) = await consolidate.enqueue(rt)
    assert first.id == second.id and first.unique_key == "scheduled:memory.consolidate"
    assert first.payload["trigger"] == "scheduled"
    job = await rt.queue.get(first.id)
    outcome = await rt.executor.run(arq_job_id(job.id, job.dispatch_token or ""))
    await rt.mirror.drain()
    assert outcome == "succeeded"
    assert (await rt.queue.get(first.id)).status == JobStatus.SUCCEEDED
    (third,) = await consolidate.enqueue(rt)
    assert third.id != first.id
    # every scheduled type accepts the scheduled payload
    for job_type in SCHEDULED_JOBS:
        (job,) = await by_name[f"schedule.{job_type}"].enqueue(rt)
        assert job.unique_key == f"scheduled:{job_type}"
