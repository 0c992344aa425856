"""Financial data, ingestions, sync status, monitoring views and refresh, LLM cache metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from cesar_core.db import Database


def bar(ts: str, close: float, **extra: object) -> dict[str, object]:
    return {"symbol": "AAPL", "ts": ts, "close": close, **extra}


async def test_financial_upsert_and_range(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    bars = [
        bar("2024-01-01T00:00:00Z", 10.5, open=10, high=11, low=9.5, volume=1000),
        bar("2024-01-02T00:00:00Z", 11.25),
        bar("2024-01-03T00:00:00Z", 12),
        {"symbol": "MSFT", "ts": "2024-01-01T00:00:00Z", "close": 300},
    ]
    response = await client.post("/api/v1/financial-data", json={"bars": bars}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"upserted": 4}
    again = await client.post(
        "/api/v1/financial-data",
        json={"bars": [bar("2024-01-02T00:00:00Z", 11.75, source="fix")]},
        headers=auth,
    )
    assert again.json() == {"upserted": 1}

    series = (
        await client.get(
            "/api/v1/financial-data/AAPL?start=2024-01-02T00:00:00Z&end=2024-01-04T00:00:00Z"
        )
    ).json()
    assert series["symbol"] == "AAPL"
    assert [(b["ts"][:10], b["close"], b["source"]) for b in series["bars"]] == [
        ("2024-01-02", 11.75, "fix"),
        ("2024-01-03", 12.0, "api"),
    ]
    everything = (await client.get("/api/v1/financial-data/AAPL")).json()["bars"]
    assert everything[0]["high"] == 11.0 and everything[0]["volume"] == 1000.0
    assert (await client.get("/api/v1/financial-data/NONE")).json()["bars"] == []
    backwards = await client.get(
        "/api/v1/financial-data/AAPL?start=2024-01-03T00:00:00Z&end=2024-01-01T00:00:00Z"
    )
    assert backwards.status_code == 422

    invalid = await client.post(
        "/api/v1/financial-data",
        json={
            "bars": [bar("2024-02-01T00:00:00Z", 1), bar("2024-02-02T00:00:00Z", 1, high=1, low=2)]
        },
        headers=auth,
    )
    assert invalid.status_code == 422 and "high" in invalid.json()["error"]["message"]
    dup = await client.post(
        "/api/v1/financial-data",
        json={"bars": [bar("2024-02-01T00:00:00Z", 1), bar("2024-02-01T00:00:00Z", 2)]},
        headers=auth,
    )
    assert dup.status_code == 422 and "bars[1]" in dup.json()["error"]["message"]
    negative = await client.post(
        "/api/v1/financial-data",
        json={"bars": [bar("2024-02-01T00:00:00Z", 1, volume=-5)]},
        headers=auth,
    )
    assert negative.status_code == 422 and "volume" in negative.json()["error"]["message"]
    nan = await client.post(
        "/api/v1/financial-data",
        content=b'{"bars": [{"symbol": "AAPL", "ts": "2024-02-01T00:00:00Z", "close": NaN}]}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert nan.status_code == 422
    async with db.connection() as conn:  # none of the rejected batches wrote anything
        assert await conn.fetchval("SELECT count(*) FROM financial_data") == 4


async def test_ingestions_start_and_log(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    started = await client.post(
        "/api/v1/ingestions",
        json={"payload": {"source": "csv-upload", "format": "csv", "data": "symbol,ts,close\n"}},
        headers=auth,
    )
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["job_type"] == "ingest.financial" and job["payload"]["source"] == "csv-upload"
    neither = await client.post(
        "/api/v1/ingestions", json={"payload": {"source": "x"}}, headers=auth
    )
    assert neither.status_code == 422 and "data" in neither.json()["error"]["message"]

    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO ingestion_log (source, job_id, status, rows_total, rows_ok, rows_failed)"
            " VALUES ('csv-upload', $1, 'partial', 10, 8, 2), ('other', NULL, 'failed', 1, 0, 1)",
            __import__("uuid").UUID(job["id"]),
        )
    log = (await client.get("/api/v1/ingestions")).json()["items"]
    assert {r["source"] for r in log} == {"csv-upload", "other"}
    mine = (await client.get(f"/api/v1/ingestions?job_id={job['id']}")).json()["items"]
    assert len(mine) == 1 and mine[0]["rows_failed"] == 2
    failed = (await client.get("/api/v1/ingestions?status=failed")).json()["items"]
    assert [r["source"] for r in failed] == ["other"]


async def test_sync_status_monitoring_views_and_refresh(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    now = datetime.now(UTC)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO sync_status (system_name, last_sync_at, last_success_at, status,"
            " records_synced) VALUES ('supabase', $1, $1, 'ok', 42)",
            now,
        )
        await conn.execute(
            "INSERT INTO ingestion_log (source, status, rows_failed) VALUES ('feed', 'failed', 3)"
        )
    status = (await client.get("/api/v1/sync/status")).json()["items"]
    assert [(s["system_name"], s["records_synced"]) for s in status] == [("supabase", 42)]
    one = await client.get("/api/v1/sync/status/supabase")
    assert one.status_code == 200 and one.json()["status"] == "ok"
    assert (await client.get("/api/v1/sync/status/nope")).status_code == 404

    await client.post("/api/v1/jobs", json={"job_type": "maintenance.noop"}, headers=auth)
    assert (await client.post("/api/v1/monitoring/refresh")).status_code == 401
    refreshed = await client.post("/api/v1/monitoring/refresh", headers=auth)
    assert refreshed.status_code == 200
    assert [v["view"] for v in refreshed.json()["views"]] == [
        "mv_sync_lag",
        "mv_job_queue_backlog",
        "mv_ingestion_errors",
    ]
    lag = (await client.get("/api/v1/monitoring/sync-lag")).json()["items"]
    assert lag[0]["system_name"] == "supabase" and lag[0]["lag_seconds"] >= 0
    backlog = (await client.get("/api/v1/monitoring/job-backlog")).json()["items"]
    assert backlog[0]["job_type"] == "maintenance.noop" and backlog[0]["job_count"] == 1
    errors = (await client.get("/api/v1/monitoring/ingestion-errors")).json()["items"]
    assert errors[0]["source"] == "feed" and errors[0]["failed_runs"] == 1


async def test_llm_cache_metrics(client: httpx.AsyncClient, db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO llm_cache_metrics (model, bucket_start, requests, cache_hits,"
            " cache_misses, total_latency_ms, max_latency_ms) VALUES"
            " ('llama', '2024-01-01T00:00:00Z', 10, 6, 4, 500, 90),"
            " ('llama', '2024-01-01T01:00:00Z', 10, 2, 8, 700, 120),"
            " ('qwen', '2024-01-01T00:00:00Z', 4, 4, 0, 40, 15)"
        )
    body = (await client.get("/api/v1/llm/cache-metrics")).json()
    totals = {t["model"]: t for t in body["totals"]}
    assert totals["llama"]["requests"] == 20 and totals["llama"]["hit_rate"] == 0.4
    assert totals["llama"]["avg_latency_ms"] == 60.0 and totals["llama"]["max_latency_ms"] == 120
    assert totals["qwen"]["hit_rate"] == 1.0
    assert len(body["buckets"]) == 3
    only = (
        await client.get("/api/v1/llm/cache-metrics?model=llama&since=2024-01-01T01:00:00Z")
    ).json()
    assert len(only["buckets"]) == 1 and only["totals"][0]["requests"] == 10
    assert (
        await client.get(
            "/api/v1/llm/cache-metrics?since=2024-01-02T00:00:00Z&until=2024-01-01T00:00:00Z"
        )
    ).status_code == 422
