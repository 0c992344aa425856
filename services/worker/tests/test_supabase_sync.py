"""``sync.supabase`` against a second real PostgreSQL database as the target."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from cesar_core.db import Database, connect
from cesar_core.errors import InvalidPayload
from cesar_core.jobs.dispatch import arq_job_id
from cesar_core.testing import database_named, drop_database
from cesar_worker.config import WorkerConfig
from cesar_worker.runtime import WorkerRuntime
from cesar_worker.schedule import scheduled_job_crons
from pydantic import SecretStr

from .conftest import FakeClock, free_port


async def _new_target(template_database_url: str) -> str:
    """A database like the per-test ones (copied from the migrated template), empty tables."""
    name = f"cesar_sync_{uuid.uuid4().hex[:10]}"
    template = template_database_url.rsplit("/", 1)[1]
    admin = await connect(database_named(template_database_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return name


@pytest_asyncio.fixture
async def targets(template_database_url: str) -> AsyncIterator[list[str]]:
    """Two target databases' URLs; dropped afterwards."""
    names = [await _new_target(template_database_url) for _ in range(2)]
    yield [database_named(template_database_url, n) for n in names]
    for name in names:
        await drop_database(name)


@pytest_asyncio.fixture
async def make_rt(
    config: WorkerConfig, db: Database, redis: Any, registry: Any, arq_cleanup: None
) -> AsyncIterator[Any]:
    """Start a runtime with settings changed for the test (and stop it afterwards)."""
    started: list[WorkerRuntime] = []

    async def make(**update: Any) -> WorkerRuntime:
        cfg = config.model_copy(update={"alert_webhook_url": None, **update})
        runtime = WorkerRuntime(cfg, db, redis, registry, clock=FakeClock(), rand=lambda: 0.5)
        await runtime.start(serve_metrics=False)
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        await runtime.stop()


async def run(rt: WorkerRuntime, payload: dict[str, Any]) -> tuple[str, Any]:
    job = await rt.queue.enqueue("sync.supabase", payload)
    outcome = await rt.executor.run(arq_job_id(job.id, job.dispatch_token or ""))
    await rt.mirror.drain()
    return outcome, await rt.queue.get(job.id)


async def count(url: str, sql: str, *args: Any) -> Any:
    conn = await connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def add_agents(db: Database, n: int, prefix: str = "a") -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO agents (name, agent_type) SELECT $1 || g, 'bot' "
            "FROM generate_series(1, $2::INT8) AS g",
            prefix,
            n,
        )


# -- issue 11, finding 2: the caller never chooses where the worker connects ------------------


async def test_a_payload_cannot_point_the_sync_at_a_url(
    make_rt: Any, db: Database, targets: list[str]
) -> None:
    rt = await make_rt(supabase_db_url=SecretStr(targets[0]))
    await add_agents(db, 3)
    with pytest.raises(InvalidPayload, match="target_url is not accepted"):
        await rt.queue.enqueue("sync.supabase", {"target_url": targets[1]})
    # a name the operator did not configure fails at once and connects nowhere
    outcome, job = await run(rt, {"target": "attacker"})
    assert outcome == "failed" and job.attempts == 1
    assert "unknown sync target 'attacker'" in job.last_error
    assert "configured targets: default" in job.last_error
    assert await count(targets[1], "SELECT COUNT(*) FROM agents") == 0
    async with db.connection() as conn:
        systems = [r[0] for r in await conn.fetch("SELECT system_name FROM sync_status")]
        cursors = await conn.fetchval("SELECT COUNT(*) FROM supabase_sync_cursors")
    assert systems == [] and cursors == 0


async def test_each_target_has_its_own_cursor(
    make_rt: Any, db: Database, targets: list[str]
) -> None:
    rt = await make_rt(
        supabase_db_url=SecretStr(targets[0]),
        supabase_targets=SecretStr(json.dumps({"archive": targets[1]})),
    )
    await add_agents(db, 7)
    outcome, job = await run(rt, {"tables": ["agents"], "batch_size": 3})
    assert outcome == "succeeded" and job.result["target"] == "default"
    assert await count(targets[0], "SELECT COUNT(*) FROM agents") == 7
    # the default target's run moved only its own cursor: the archive still gets every row
    outcome, job = await run(rt, {"tables": ["agents"], "target": "archive"})
    assert outcome == "succeeded", job.last_error
    assert await count(targets[1], "SELECT COUNT(*) FROM agents") == 7
    async with db.connection() as conn:
        cursors = await conn.fetch(
            "SELECT target_name, rows_synced, status FROM supabase_sync_cursors "
            "WHERE table_name = 'agents' ORDER BY target_name"
        )
        status = await conn.fetch(
            "SELECT system_name, status, lag_seconds, records_synced, last_success_at "
            "FROM sync_status ORDER BY system_name"
        )
    assert [tuple(r) for r in cursors] == [("archive", 7, "ok"), ("default", 7, "ok")]
    assert [(r[0], r[1], r[2], r[3]) for r in status] == [
        ("supabase", "ok", 0, 7),
        ("supabase:archive", "ok", 0, 7),
    ]
    # a second run copies only what changed
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE agents SET description = 'x', updated_at = now() WHERE name = 'a1'"
        )
    outcome, job = await run(rt, {"tables": ["agents"]})
    assert (outcome, job.result["rows"]) == ("succeeded", 1)
    assert await count(targets[0], "SELECT description FROM agents WHERE name = 'a1'") == "x"


async def test_errors_name_the_target_and_host_never_the_url(make_rt: Any, db: Database) -> None:
    secret = "s3" + "cret-" + uuid.uuid4().hex[:6]  # built at runtime: no credential literal
    port = free_port()  # nothing listens there
    url = f"postgresql://sync@127.0.0.1:{port}/cesar?password={secret}&connect_timeout=2"
    rt = await make_rt(supabase_db_url=SecretStr(url), job_queue_max_attempts=1)
    outcome, job = await run(rt, {"tables": ["agents"]})
    assert outcome == "failed"
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT status, last_error, details FROM sync_status WHERE system_name = 'supabase'"
        )
    shown = [job.last_error, row["last_error"], row["details"]]
    assert row["status"] == "error"
    assert f"default (127.0.0.1:{port})" in row["last_error"]
    for text in shown:
        assert secret not in text and "password=" not in text and "sync@" not in text
    # a target that never worked still shows a lag that grows (the alert rules watch it)
    rt.clock.advance(minutes=10)
    await run(rt, {"tables": ["agents"]})
    async with db.connection() as conn:
        lag = await conn.fetchval(
            "SELECT lag_seconds FROM sync_status WHERE system_name = 'supabase'"
        )
    assert lag == 600


async def test_production_requires_tls_the_way_the_driver_reads_it(
    make_rt: Any, db: Database, targets: list[str]
) -> None:
    # asyncpg keeps the last sslmode: this URL connects without TLS
    url = f"{targets[0]}?sslmode=require&sslmode=disable"
    rt = await make_rt(environment="production", supabase_db_url=SecretStr(url))
    outcome, job = await run(rt, {"tables": ["agents"]})
    assert outcome == "failed" and job.attempts == 1
    assert "does not require TLS (sslmode=disable)" in job.last_error
    assert "ALLOW_INSECURE_SYNC_TARGETS" in job.last_error
    allowed = await make_rt(
        environment="production",
        supabase_db_url=SecretStr(url),
        allow_insecure_sync_targets=True,
    )
    outcome, job = await run(allowed, {"tables": ["agents"]})
    assert outcome == "succeeded", job.last_error


# -- issue 13, part 3: never skip a row, deletes reach the target, own schedule -------------


async def test_rows_committed_out_of_timestamp_order_are_copied(
    make_rt: Any, db: Database, database_url: str, targets: list[str]
) -> None:
    """Two real transactions: the earlier-stamped one commits after the sync read past it."""
    rt = await make_rt(supabase_db_url=SecretStr(targets[0]))
    early = await asyncpg.connect(database_url)
    late = await asyncpg.connect(database_url)
    try:
        slow = early.transaction()
        await slow.start()
        # stamped with its transaction's start time (now()), i.e. before "fast"
        await early.execute("INSERT INTO agents (name, agent_type) VALUES ('slow', 'bot')")
        async with late.transaction():
            await late.execute("INSERT INTO agents (name, agent_type) VALUES ('fast', 'bot')")
        outcome, _ = await run(rt, {"tables": ["agents"]})
        assert outcome == "succeeded"
        assert await count(targets[0], "SELECT COUNT(*) FROM agents") == 1
        await slow.commit()
    finally:
        await early.close()
        await late.close()
    async with db.connection() as conn:
        stamps = dict(await conn.fetch("SELECT name, updated_at FROM agents"))
    assert stamps["slow"] < stamps["fast"]  # the first run read past 'slow' before it committed
    outcome, job = await run(rt, {"tables": ["agents"]})
    assert outcome == "succeeded" and job.result["rows"] == 1
    names = await count(targets[0], "SELECT string_agg(name, ',' ORDER BY name) FROM agents")
    assert names == "fast,slow"


async def test_deletes_reach_the_target(make_rt: Any, db: Database, targets: list[str]) -> None:
    rt = await make_rt(supabase_db_url=SecretStr(targets[0]), supabase_sync_compare_seconds=0)
    await add_agents(db, 5)
    async with db.connection() as conn:
        template_id = await conn.fetchval(
            "INSERT INTO workflow_templates (name, definition) "
            "VALUES ('t', CAST('{\"steps\": []}' AS JSONB)) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO workflow_executions (template_id, status) VALUES ($1, 'succeeded')",
            template_id,
        )
    tables = ["agents", "workflow_templates", "workflow_executions"]
    outcome, job = await run(rt, {"tables": tables, "batch_size": 2})
    assert outcome == "succeeded", job.last_error
    assert await count(targets[0], "SELECT COUNT(*) FROM workflow_executions") == 1
    async with db.connection() as conn:
        await conn.execute("DELETE FROM agents WHERE name IN ('a2', 'a4')")
        # the child goes before its parent (the target keeps the foreign key too)
        await conn.execute("DELETE FROM workflow_executions")
        await conn.execute("DELETE FROM workflow_templates")
    outcome, job = await run(rt, {"tables": tables, "batch_size": 2})
    assert outcome == "succeeded", job.last_error
    assert job.result["deleted"] == {
        "agents": 2,
        "workflow_templates": 1,
        "workflow_executions": 1,
    }
    names = await count(targets[0], "SELECT string_agg(name, ',' ORDER BY name) FROM agents")
    assert names == "a1,a3,a5"
    assert await count(targets[0], "SELECT COUNT(*) FROM workflow_templates") == 0
    async with db.connection() as conn:
        deleted = await conn.fetchval(
            "SELECT rows_deleted FROM supabase_sync_cursors WHERE table_name = 'agents'"
        )
    assert deleted == 2


async def test_the_worker_schedules_one_sync_per_target(
    make_rt: Any, db: Database, config: WorkerConfig, targets: list[str]
) -> None:
    assert scheduled_job_crons(config, "q:cron", "cesar") == []  # nothing configured
    rt = await make_rt(
        supabase_db_url=SecretStr(targets[0]),
        supabase_targets=SecretStr(f"archive={targets[1]}"),
        supabase_sync_interval_seconds=30,
    )
    (entry,) = scheduled_job_crons(rt.config, "q:cron", "cesar")
    assert entry.name == "q:cron.supabase_sync" and entry.second == {0, 30}
    await entry.coroutine({"cesar": rt})
    await entry.coroutine({"cesar": rt})  # still pending: no second job per target
    async with db.connection() as conn:
        jobs = await conn.fetch(
            "SELECT unique_key, payload FROM job_queue WHERE job_type = 'sync.supabase' "
            "ORDER BY unique_key"
        )
    assert [(r["unique_key"], json.loads(r["payload"]).get("target")) for r in jobs] == [
        ("sync.supabase:archive", "archive"),
        ("sync.supabase:default", None),
    ]


async def test_lag_is_the_time_since_the_target_was_last_complete(
    make_rt: Any, db: Database, targets: list[str]
) -> None:
    rt = await make_rt(supabase_db_url=SecretStr(targets[0]), supabase_sync_safety_window_seconds=0)
    await add_agents(db, 2)
    outcome, _ = await run(rt, {"tables": ["agents"]})
    assert outcome == "succeeded"
    complete_at = rt.clock()
    await add_agents(db, 7, prefix="b")
    rt.clock.advance(minutes=3)
    # two batches of two per run: not everything fits, the target is not complete
    outcome, job = await run(rt, {"tables": ["agents"], "batch_size": 2, "max_batches": 2})
    assert (outcome, job.result["rows"]) == ("succeeded", 4)
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT status, lag_seconds, last_success_at FROM sync_status "
            "WHERE system_name = 'supabase'"
        )
    assert (row["status"], row["lag_seconds"], row["last_success_at"]) == (
        "lagging",
        180,
        complete_at,
    )
    outcome, job = await run(rt, {"tables": ["agents"]})
    assert (outcome, job.result["rows"]) == ("succeeded", 3)
    assert await count(targets[0], "SELECT COUNT(*) FROM agents") == 9
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT status, lag_seconds, last_success_at FROM sync_status "
            "WHERE system_name = 'supabase'"
        )
    assert (row["status"], row["lag_seconds"], row["last_success_at"]) == ("ok", 0, rt.clock())


async def test_a_row_recreated_under_the_same_unique_key(
    make_rt: Any, db: Database, targets: list[str]
) -> None:
    """agents.name is unique: the old row must leave the target before the new one arrives."""
    rt = await make_rt(supabase_db_url=SecretStr(targets[0]), job_queue_max_attempts=1)
    await add_agents(db, 3)
    assert (await run(rt, {"tables": ["agents"]}))[0] == "succeeded"

    async def recreate() -> uuid.UUID:
        async with db.connection() as conn:
            await conn.execute("DELETE FROM agents WHERE name = 'a2'")
            return await conn.fetchval(
                "INSERT INTO agents (name, agent_type) VALUES ('a2', 'new') RETURNING id"
            )

    # the incremental copy meets the old row's name: the run fails and asks for a comparison
    await recreate()
    outcome, job = await run(rt, {"tables": ["agents"]})
    assert outcome == "failed" and "UniqueViolationError" in job.last_error
    outcome, job = await run(rt, {"tables": ["agents"]})
    assert outcome == "succeeded", job.last_error
    assert job.result["deleted"] == {"agents": 1}
    # within one comparison: deleted first, then copied
    new_id = await recreate()
    rt2 = await make_rt(supabase_db_url=SecretStr(targets[0]), supabase_sync_compare_seconds=0)
    outcome, job = await run(rt2, {"tables": ["agents"]})
    assert outcome == "succeeded", job.last_error
    assert await count(targets[0], "SELECT id FROM agents WHERE name = 'a2'") == new_id
    assert await count(targets[0], "SELECT COUNT(*) FROM agents") == 3
