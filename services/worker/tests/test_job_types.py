"""Built-in job types and cron duties against real PostgreSQL/Redis and small real HTTP servers."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cesar_core.db import Database
from cesar_core.jobs import JobStatus
from cesar_core.jobs.dispatch import arq_job_id
from cesar_worker.config import WorkerConfig
from cesar_worker.runtime import WorkerRuntime
from pydantic import SecretStr

from .conftest import FakeClock, free_port


class Recorder(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        type(self).requests.append((self.path, body))
        if self.path == "/api/generate":
            answer = {
                "model": body["model"],
                "response": f"echo: {body['prompt']}",
                "done": True,
                "eval_count": 3,
            }
        else:
            answer = {"ok": True}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A small real HTTP server: fake Ollama (/api/generate) and a webhook sink."""
    handler = type("H", (Recorder,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    server.shutdown()
    server.server_close()


@pytest.fixture
async def rt(
    config: Any,
    db: Database,
    redis: Any,
    registry: Any,
    clock: FakeClock,
    arq_cleanup: None,
    http_server: tuple[str, list[Any]],
) -> Any:
    cfg = config.model_copy(update={"ollama_url": http_server[0], "alert_webhook_url": None})
    runtime = WorkerRuntime(cfg, db, redis, registry, clock=clock, rand=lambda: 0.5)
    await runtime.start(serve_metrics=False)
    yield runtime
    await runtime.stop()


async def run(rt: WorkerRuntime, job_id: uuid.UUID) -> str:
    job = await rt.queue.get(job_id)
    outcome = await rt.executor.run(arq_job_id(job.id, job.dispatch_token or ""))
    await rt.mirror.drain()
    return outcome


async def test_workflow_with_llm_event_delay_and_enqueue(
    rt: WorkerRuntime, db: Database, http_server: tuple[str, list[Any]]
) -> None:
    definition = {
        "steps": [
            {"name": "ask", "kind": "llm.generate", "model": "tiny", "prompt": "hi {{input.who}}"},
            {
                "name": "tell",
                "kind": "agent.event",
                "event_type": "workflow.said",
                "payload": {"text": "{{steps.ask.response}}"},
            },
            {"name": "wait", "kind": "delay", "seconds": 0.01},
            {"name": "next", "kind": "enqueue", "job_type": "maintenance.noop", "payload": {}},
        ]
    }
    async with db.connection() as conn:
        template_id = await conn.fetchval(
            "INSERT INTO workflow_templates (name, definition) VALUES ('greet', CAST($1 AS JSONB)) "
            "RETURNING id",
            json.dumps(definition),
        )
    job = await rt.queue.enqueue(
        "workflow.execute", {"template_name": "greet", "input": {"who": "bo"}}
    )
    assert await run(rt, job.id) == "succeeded"
    assert http_server[1][0][1] == {"model": "tiny", "prompt": "hi bo", "stream": False}
    async with db.connection() as conn:
        execution = await conn.fetchrow(
            "SELECT template_id, status, current_step, output, steps FROM workflow_executions "
            "WHERE job_id = $1",
            job.id,
        )
        event = await conn.fetchrow("SELECT event_type, payload FROM agent_events")
        enqueued = await conn.fetchval(
            "SELECT COUNT(*) FROM job_queue WHERE job_type = 'maintenance.noop'"
        )
    assert execution["template_id"] == template_id
    assert (execution["status"], execution["current_step"]) == ("succeeded", 4)
    assert json.loads(execution["output"])["steps"]["ask"]["response"] == "echo: hi bo"
    assert event["event_type"] == "workflow.said"
    assert json.loads(event["payload"]) == {"text": "echo: hi bo"}
    assert enqueued == 1
    row = await rt.queue.get(job.id)
    assert row.status == JobStatus.SUCCEEDED


ONCE_STEPS = {
    "steps": [
        {"name": "ask", "kind": "llm.generate", "model": "tiny", "prompt": "hi"},
        {"name": "tell", "kind": "agent.event", "event_type": "workflow.said", "payload": {}},
        {"name": "next", "kind": "enqueue", "job_type": "maintenance.noop", "payload": {}},
    ]
}
SELECT_STEPS = "SELECT steps FROM workflow_executions WHERE id = $1"
SELECT_EXECUTION_STATE = (
    "SELECT status, current_step, steps, output, finished_at, updated_at FROM workflow_executions "
    "WHERE id = $1"
)
# What a worker killed after the enqueue step, before its progress write, leaves behind:
# only the first step recorded as done.
REWIND_EXECUTION = """
UPDATE workflow_executions
SET status = 'running', current_step = 1, steps = CAST($2 AS JSONB), output = NULL,
    finished_at = NULL
WHERE id = $1
"""


async def deliver(rt: WorkerRuntime, execution_id: uuid.UUID) -> None:
    """One delivery of the execution: a workflow.execute job naming it, run to the end."""
    job = await rt.queue.enqueue(
        "workflow.execute", {"template_name": "once", "execution_id": str(execution_id)}
    )
    assert await run(rt, job.id) == "succeeded"


async def effects(db: Database, requests: list[Any]) -> tuple[int, int, int]:
    async with db.connection() as conn:
        events = await conn.fetchval("SELECT COUNT(*) FROM agent_events")
        enqueued = await conn.fetchval(
            "SELECT COUNT(*) FROM job_queue WHERE job_type = 'maintenance.noop'"
        )
    generated = len([path for path, _ in requests if path == "/api/generate"])
    return events, enqueued, generated


async def add_once_template(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO workflow_templates (name, definition) VALUES ('once', CAST($1 AS JSONB))",
            json.dumps(ONCE_STEPS),
        )


async def test_finished_execution_delivered_again_repeats_nothing(
    rt: WorkerRuntime, db: Database, http_server: tuple[str, list[Any]], clock: FakeClock
) -> None:
    await add_once_template(db)
    execution_id = uuid.uuid4()
    await deliver(rt, execution_id)
    async with db.connection() as conn:
        finished = await conn.fetchrow(SELECT_EXECUTION_STATE, execution_id)
    assert finished["status"] == "succeeded"
    clock.advance(minutes=1)  # a rewrite of the finished row would show in its times
    await deliver(rt, execution_id)
    assert await effects(db, http_server[1]) == (1, 1, 1)
    async with db.connection() as conn:
        assert await conn.fetchrow(SELECT_EXECUTION_STATE, execution_id) == finished


@pytest.mark.parametrize("child_finished", [False, True], ids=["child-active", "child-done"])
async def test_execution_redelivered_after_a_crash_repeats_no_effect(
    rt: WorkerRuntime, db: Database, http_server: tuple[str, list[Any]], child_finished: bool
) -> None:
    await add_once_template(db)
    execution_id = uuid.uuid4()
    await deliver(rt, execution_id)
    if child_finished:  # the enqueued job ran before the redelivery: its unique_key is free
        async with db.connection() as conn:
            child = await conn.fetchval(
                "SELECT id FROM job_queue WHERE job_type = 'maintenance.noop'"
            )
        assert await run(rt, child) == "succeeded"
    async with db.connection() as conn:
        steps = json.loads(await conn.fetchval(SELECT_STEPS, execution_id))
        await conn.execute(REWIND_EXECUTION, execution_id, json.dumps(steps[:1]))
    await deliver(rt, execution_id)
    assert await effects(db, http_server[1]) == (1, 1, 1)
    async with db.connection() as conn:
        state = await conn.fetchrow(SELECT_EXECUTION_STATE, execution_id)
    assert (state["status"], state["current_step"]) == ("succeeded", 3)


async def test_workflow_unknown_template_fails_at_once(rt: WorkerRuntime) -> None:
    job = await rt.queue.enqueue("workflow.execute", {"template_name": "nope"})
    assert await run(rt, job.id) == "failed"
    row = await rt.queue.get(job.id)
    assert row.attempts == 1 and "not found" in (row.last_error or "")


async def test_financial_ingest_with_bad_rows(rt: WorkerRuntime, db: Database) -> None:
    csv_text = (
        "symbol,date,open,high,low,close,volume\n"
        "acme,2024-01-02,1,2,0.5,1.5,100\n"
        "acme,2024-01-03,1,0.5,2,1.5,100\n"  # high below low
        ",2024-01-04,1,2,1,1.5,100\n"  # no symbol
        "acme,yesterday,1,2,1,1.5,100\n"  # bad date
        "acme,2024-01-05,1,2,1,1.7,\n"
    )
    job = await rt.queue.enqueue("ingest.financial", {"data": csv_text, "source": "test"})
    assert await run(rt, job.id) == "succeeded"
    async with db.connection() as conn:
        bars = await conn.fetch("SELECT symbol, close FROM financial_data ORDER BY ts")
        log = await conn.fetchrow(
            "SELECT status, rows_total, rows_ok, rows_failed, errors FROM ingestion_log "
            "WHERE job_id = $1",
            job.id,
        )
    assert [(b["symbol"], float(b["close"])) for b in bars] == [("ACME", 1.5), ("ACME", 1.7)]
    assert (log["status"], log["rows_total"], log["rows_ok"], log["rows_failed"]) == (
        "partial",
        5,
        2,
        3,
    )
    errors = json.loads(log["errors"])
    assert [e["row"] for e in errors] == [2, 3, 4]
    assert "below low" in errors[0]["error"] and "symbol" in errors[1]["error"]
    # a JSON file upserts the same bar again (ON CONFLICT DO UPDATE)
    assert rt.config.ingest_base_dir
    path = Path(rt.config.ingest_base_dir) / f"bars-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps([{"symbol": "ACME", "ts": "2024-01-02", "close": 9}]))
    job2 = await rt.queue.enqueue("ingest.financial", {"path": path.name})
    assert await run(rt, job2.id) == "succeeded"
    # nothing outside INGEST_BASE_DIR can be read
    escape = await rt.queue.enqueue("ingest.financial", {"path": "../../../../etc/passwd"})
    assert await run(rt, escape.id) == "failed"
    assert "outside INGEST_BASE_DIR" in (await rt.queue.get(escape.id)).last_error
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM financial_data") == 2
        assert float(await conn.fetchval("SELECT MIN(close) FROM financial_data")) == 1.7


@pytest.mark.engine(
    "postgresql", reason="the prune duty runs on PostgreSQL only (CockroachDB uses row-level TTL)"
)
async def test_refresh_views_and_prune(rt: WorkerRuntime, db: Database) -> None:
    await rt.queue.enqueue("maintenance.noop", {})
    job = await rt.queue.enqueue("maintenance.refresh_views", {})
    assert await run(rt, job.id) == "succeeded"
    async with db.connection() as conn:
        backlog = await conn.fetchval("SELECT SUM(job_count) FROM mv_job_queue_backlog")
        await conn.execute(
            "INSERT INTO ingestion_log (source, expires_at) VALUES ('old', $1::TIMESTAMPTZ - INTERVAL '1 day'),"
            " ('new', $1::TIMESTAMPTZ + INTERVAL '1 day')",
            rt.clock(),
        )
    assert backlog == 2
    deleted = await rt.duty("prune")
    assert deleted["ingestion_log"] == 1
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT source FROM ingestion_log") == "new"


async def test_failure_alert_posts_webhook_once(
    rt: WorkerRuntime, http_server: tuple[str, list[Any]], clock: FakeClock
) -> None:
    rt.alerts.config = rt.config.model_copy(
        update={"alert_webhook_url": SecretStr(f"{http_server[0]}/hook")}
    )
    assert (await rt.alerts.run_once())["failed"] == 0
    job = await rt.queue.enqueue("maintenance.noop", {"fail": "disk on fire"}, max_attempts=1)
    assert await run(rt, job.id) == "failed"
    summary = await rt.alerts.run_once()
    assert summary == {"failed": 1, "window_minutes": 15.0, "alerted": True, "webhook": True}
    path, body = http_server[1][-1]
    assert path == "/hook" and body["failed"] == 1
    assert body["jobs"][0]["id"] == str(job.id)
    assert "disk on fire" in body["jobs"][0]["last_error"]
    assert (await rt.alerts.run_once())["alerted"] is False  # announced once
    clock.advance(minutes=16)
    assert (await rt.alerts.run_once())["failed"] == 0


async def test_refresh_publishes_lag_and_ingestion_errors(db: Database) -> None:
    from cesar_worker import metrics
    from cesar_worker.duties import refresh_views

    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO sync_status (system_name, status, last_success_at) "
            "VALUES ('supabase', 'lagging', now() - INTERVAL '10 minutes')"
        )
        await conn.execute(
            "INSERT INTO ingestion_log (source, status, rows_total, rows_ok, rows_failed) "
            "VALUES ('upload', 'partial', 20, 8, 12)"
        )
    await refresh_views(db)
    assert metrics.SYNC_LAG.labels("supabase")._value.get() >= 600
    assert metrics.INGESTION_ERRORS.labels("upload")._value.get() == 12
    async with db.connection() as conn:
        samples = await conn.fetch(
            "SELECT component, metric_value FROM system_metrics "
            "WHERE metric_name = 'sync_lag_seconds'"
        )
    assert [(r["component"], r["metric_value"] >= 600) for r in samples] == [("supabase", True)]


def test_file_ingestion_is_off_without_a_base_dir(config: WorkerConfig) -> None:
    from cesar_core.jobs import PermanentJobError
    from cesar_core.jobs.builtin import FinancialIngestPayload
    from cesar_worker.jobs.financial import _read_input

    no_dir = config.model_copy(update={"ingest_base_dir": None})
    with pytest.raises(PermanentJobError, match="set INGEST_BASE_DIR"):
        _read_input(FinancialIngestPayload(path="/etc/passwd"), no_dir)


async def test_llm_steps_go_to_ollama_proxy_url_when_it_is_set(
    config: Any,
    db: Database,
    redis: Any,
    registry: Any,
    clock: FakeClock,
    arq_cleanup: None,
    http_server: tuple[str, list[Any]],
) -> None:
    """With OLLAMA_PROXY_URL set, llm.generate goes there (cache, limits, metrics), not to
    OLLAMA_URL (here a closed port)."""
    cfg = config.model_copy(
        update={
            "ollama_url": f"http://127.0.0.1:{free_port()}",
            "ollama_proxy_url": http_server[0],
            "alert_webhook_url": None,
        }
    )
    runtime = WorkerRuntime(cfg, db, redis, registry, clock=clock, rand=lambda: 0.5)
    await runtime.start(serve_metrics=False)
    try:
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO workflow_templates (name, definition) "
                "VALUES ('ask', CAST($1 AS JSONB))",
                json.dumps({"steps": [ONCE_STEPS["steps"][0]]}),
            )
        job = await runtime.queue.enqueue("workflow.execute", {"template_name": "ask"})
        assert await run(runtime, job.id) == "succeeded"
    finally:
        await runtime.stop()
    assert http_server[1] == [("/api/generate", {"model": "tiny", "prompt": "hi", "stream": False})]


def test_ollama_proxy_url_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_PROXY_URL", raising=False)
    assert WorkerConfig().ollama_proxy_url is None
    monkeypatch.setenv("OLLAMA_PROXY_URL", "http://127.0.0.1:11435")
    assert WorkerConfig().ollama_proxy_url == "http://127.0.0.1:11435"
