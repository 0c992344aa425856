"""The jobs listing's fast path (JSON built by the database) against the model path (rows ->
``Job`` models -> pydantic JSON): the same value, the same key order, the same cursor, for
awkward rows (unicode, escapes, nested objects, nulls, timestamps with and without
microseconds) and for every filter; and the same bytes wherever the database's JSONB printing
cannot differ (compact payloads/results)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from cesar_api.app import create_app
from cesar_api.pagination import next_cursor
from cesar_api.routes.jobs import JobOut, JobPage, page_body
from cesar_api.settings import ApiSettings
from cesar_core.db import Database
from cesar_core.jobs import Job
from cesar_core.jobs.listing import list_jobs_json
from cesar_core.jobs.repository import list_jobs
from pydantic import TypeAdapter

from .conftest import client_for

_JOBS = TypeAdapter(list[Job])

INSERT = """
INSERT INTO job_queue (id, job_type, payload, status, attempts, max_attempts, run_after,
                       unique_key, dispatch_token, last_error, result, worker_id, heartbeat_at,
                       created_at, started_at, updated_at, finished_at)
VALUES ($1, $2, CAST($3 AS JSONB), $4, $5, $6, $7, $8, $9, $10, CAST($11 AS JSONB), $12, $13,
        $14, $15, $16, $17)
"""

BASE = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)

AWKWARD_PAYLOADS: list[Any] = [
    {"echo": 1},
    {},
    {
        "text": "café ☕ 日本語 🚀 \u2028 \u00e9",
        "quote": 'a "b" \\c /d',
        "ctl": "\n\t\r\b\f\u0001\u001f",
    },
    {"nested": {"a": [1, 2.5, {"b": None, "c": [True, False, None]}], "empty": {}, "list": []}},
    {"numbers": [0, -1, 0.1, 1.5e-7, 1e20, 12345678901234567890, -0.25, 3.0]},
    {"null": None, "z": 1, "a": 2, "longer_key": 3, "": "empty key"},
]
AWKWARD_RESULTS: list[Any] = [
    None,
    {"ok": True, "rows": 3},
    [1, "two", None],
    "just a string ☃",
    42,
    {"deep": {"deeper": {"deepest": ["x", {"y": "ü"}]}}},
]


def _row(i: int) -> tuple[Any, ...]:
    created = BASE + timedelta(seconds=i, microseconds=0 if i % 3 == 0 else 1000 * i + 7)
    final = i % 2 == 0
    return (
        UUID(int=(i + 1) * 0x1111_1111_1111),
        "maintenance.noop" if i % 2 else "financial.ingest",
        json.dumps(AWKWARD_PAYLOADS[i % len(AWKWARD_PAYLOADS)]),
        "succeeded" if final else ("running" if i % 3 else "pending"),
        i % 4,
        5,
        created.astimezone(timezone(timedelta(hours=-7, minutes=-30))),  # any zone in
        f"key-{i}-ä" if i % 4 == 1 else None,
        "token" if not final else None,
        'boom: "quoted"\nline 2 \\ tab\t end ✗' if i % 5 == 0 else None,
        json.dumps(AWKWARD_RESULTS[i % len(AWKWARD_RESULTS)]) if final else None,
        f"worker-{i}" if i % 3 else None,
        created + timedelta(seconds=1) if i % 3 else None,
        created,
        created + timedelta(microseconds=500_000) if i % 3 else None,
        created + timedelta(seconds=2, microseconds=999_999 if i % 2 else 0),
        created + timedelta(seconds=3) if final else None,
    )


async def _seed(db: Database, n: int = 30) -> None:
    async with db.connection() as conn:
        for i in range(n):
            await conn.execute(INSERT, *_row(i))


def _pairs(text: bytes | str) -> Any:
    """Parse keeping key order (objects become lists of pairs)."""
    return json.loads(text, object_pairs_hook=list)


FILTERS: list[dict[str, Any]] = [
    {},
    {"status": "succeeded"},
    {"status": "running"},
    {"job_type": "financial.ingest"},
    {"created_after": BASE + timedelta(seconds=5)},
    {"created_before": BASE + timedelta(seconds=10)},
    {"search": "café"},
    {"search": "EMPTY KEY"},
    {"search": str(UUID(int=3 * 0x1111_1111_1111))[:8]},
    {"status": "failed"},  # no rows
]


async def test_fast_path_json_equals_model_path_json(db: Database) -> None:
    await _seed(db)
    async with db.connection() as conn:
        for filters in FILTERS:
            args: dict[str, Any] = {
                "status": None,
                "job_type": None,
                "created_after": None,
                "created_before": None,
                "search": None,
                **filters,
            }
            for limit in (1, 7, 50):
                before = None
                for _page in range(10):
                    jobs = await list_jobs(conn, before=before, limit=limit, **args)
                    fast = await list_jobs_json(conn, before=before, limit=limit, **args)
                    model_items = _JOBS.dump_json(jobs, exclude={"__all__": {"dispatch_token"}})
                    fast_items = fast.items_array()
                    assert _pairs(fast_items) == _pairs(model_items), (filters, limit)
                    # and the same as the documented response model
                    documented = [JobOut.of(j).model_dump(mode="json") for j in jobs]
                    assert json.loads(fast_items) == documented
                    # the whole document, cursor included
                    cursor = next_cursor(jobs, limit)
                    model_doc = {"items": documented, "next_cursor": cursor}
                    fast_doc = json.loads(page_body(fast, limit))
                    assert fast_doc == model_doc
                    JobPage.model_validate_json(page_body(fast, limit))
                    if cursor is None:
                        break
                    before = (jobs[-1].created_at, jobs[-1].id)


async def test_fast_path_bytes_differ_only_inside_json_columns(db: Database) -> None:
    """Outside payload/result (printed as the database stores JSONB) the bytes are the
    model path's bytes: timestamps as pydantic writes them, same separators."""
    await _seed(db, 12)
    async with db.connection() as conn:
        args: dict[str, Any] = dict.fromkeys(
            ("status", "job_type", "created_after", "created_before", "search", "before")
        )
        jobs = await list_jobs(conn, limit=50, **args)
        fast = await list_jobs_json(conn, limit=50, **args)
    model = json.loads(_JOBS.dump_json(jobs, exclude={"__all__": {"dispatch_token"}}))
    compact = [
        {**item, "payload": "<json>", "result": "<json>"} for item in json.loads(fast.items_array())
    ]
    expected = [{**item, "payload": "<json>", "result": "<json>"} for item in model]
    assert json.dumps(compact, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)
    stamps = [item["created_at"] for item in json.loads(fast.items_array())]
    assert any(s.endswith(":07Z") for s in stamps)  # whole seconds: no fraction
    assert all(s.endswith("Z") for s in stamps)
    assert any("." in s for s in stamps)


async def test_fast_path_bytes_equal_model_bytes_when_json_columns_are_compact(
    db: Database,
) -> None:
    """Payloads and results whose JSONB text is already compact (``{}``, scalars, ``null``):
    then the whole page is byte for byte what pydantic writes (escapes of control characters,
    raw non-ASCII, timestamps in any zone written as UTC with ``Z``, fraction only when
    non-zero, key order, separators)."""
    results: list[Any] = [None, 42, 'just a string \u2603 "q" \\ \u0001', True, {}, [], -0.5]
    texts = [
        '\u0001\u001f\u007f\u2028\u2029 \U0001f680 caf\u00e9 </script> \\ "q"',
        "\n\t\r\b\f",
    ]
    async with db.connection() as conn:
        for i in range(14):
            row = list(_row(i))
            row[2] = "{}"
            row[7] = f"key-{i}-{texts[i % 2]}" if i % 4 == 1 else None
            row[9] = texts[i % 2] if i % 3 == 0 else None
            row[10] = json.dumps(results[i % len(results)]) if i % 2 == 0 else None
            await conn.execute(INSERT, *row)
        args: dict[str, Any] = dict.fromkeys(
            ("status", "job_type", "created_after", "created_before", "search", "before")
        )
        for limit in (1, 5, 50):
            jobs = await list_jobs(conn, limit=limit, **args)
            fast = await list_jobs_json(conn, limit=limit, **args)
            model = _JOBS.dump_json(jobs, exclude={"__all__": {"dispatch_token"}})
            assert fast.items_array() == model
            assert fast.count == len(jobs)
            assert fast.last == (jobs[-1].created_at, jobs[-1].id)
        empty = await list_jobs_json(conn, limit=50, **{**args, "status": "failed"})
        assert (empty.items_array(), empty.count, empty.last) == (b"[]", 0, None)


async def test_listing_endpoint_serves_the_fast_path(
    make_settings: Callable[..., ApiSettings], db: Database, redis: object
) -> None:
    await _seed(db, 9)
    async with db.connection() as conn:
        args: dict[str, Any] = dict.fromkeys(
            ("status", "job_type", "created_after", "created_before", "search", "before")
        )
        jobs = await list_jobs(conn, limit=4, **args)
    async with client_for(create_app(make_settings())) as client:
        response = await client.get("/api/v1/jobs?limit=4")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["items"] == [JobOut.of(j).model_dump(mode="json") for j in jobs]
        assert body["next_cursor"] == next_cursor(jobs, 4)
        follow = (await client.get(f"/api/v1/jobs?limit=4&cursor={body['next_cursor']}")).json()
        assert [i["id"] for i in follow["items"]] == [
            str(UUID(int=(i + 1) * 0x1111_1111_1111)) for i in (4, 3, 2, 1)
        ]
