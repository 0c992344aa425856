"""cesar-backup as operators run it: a restore drill on a real PostgreSQL.

Rows are written in jobs, agents, events and financial data; a backup is taken with
``cesar-backup create``; it is restored into a fresh database with ``cesar-backup restore``;
``cesar-migrate verify`` must say ready and every table (and materialized view) must hold the
same rows, compared by count and by a checksum of the rows' text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from cesar_core.backup import database_url_for
from cesar_core.testing import drop_database

pytestmark = pytest.mark.slow

LIST_TABLES = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
ORDER BY 1
"""
LIST_VIEWS = "SELECT matviewname FROM pg_catalog.pg_matviews WHERE schemaname = 'public'"


def run(module: str, *args: str, url: str, backup_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOG_JSON": "false", "DATABASE_URL": url, "BACKUP_DIR": str(backup_dir)}
    env.pop("COCKROACH_DB_URL", None)
    env.pop("BACKUP_URI", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )


def files(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


def backup(*args: str, url: str, backup_dir: Path) -> subprocess.CompletedProcess[str]:
    return run("cesar_migrator.backup_cli", *args, url=url, backup_dir=backup_dir)


async def write_rows(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for n in range(20):
                agent = await conn.fetchval(
                    "INSERT INTO agents (name, agent_type, capabilities, config) "
                    "VALUES ($1, 'planner', $2, $3) RETURNING id",
                    f"agent-{n}",
                    ["plan", f"cap-{n}"],
                    json.dumps({"n": n, "text": "ünïcode ✓"}),
                )
                await conn.executemany(
                    "INSERT INTO agent_events (agent_id, event_type, payload) VALUES ($1, $2, $3)",
                    [(agent, "task.started", json.dumps({"i": i})) for i in range(10)],
                )
            await conn.executemany(
                "INSERT INTO financial_data (symbol, ts, close, volume) "
                "VALUES ($1, to_timestamp($2), $3, $4)",
                [("AAPL", 1_700_000_000 + d * 86400, 185.61 + d, 1000 * d) for d in range(50)],
            )
            await conn.executemany(
                "INSERT INTO job_queue (job_type, payload, status, attempts, last_error) "
                "VALUES ($1, $2, $3, $4, $5)",
                [
                    ("maintenance.noop", json.dumps({"n": n}), status, n % 3, error)
                    for n, (status, error) in enumerate(
                        [("succeeded", None), ("failed", "boom"), ("pending", None)] * 5
                    )
                ],
            )
        await conn.execute("REFRESH MATERIALIZED VIEW mv_job_queue_backlog")
    finally:
        await conn.close()


async def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of the sorted row texts, per table; rows per materialized view (pg_restore
    refreshes them, and their columns of ages in seconds move with the clock)."""
    conn = await asyncpg.connect(url)
    try:
        result = {}
        for (name,) in await conn.fetch(LIST_VIEWS):
            result[name] = (await conn.fetchval(f'SELECT count(*) FROM "{name}"'), "view")
        for (name,) in await conn.fetch(LIST_TABLES):
            # names come from the catalog, not from input
            row = await conn.fetchrow(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
                f' FROM "{name}" AS t'
            )
            result[name] = (row[0], row[1])
        return result
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def restore_target(database_url: str) -> AsyncIterator[str]:
    name = f"cesar_r_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        await drop_database(name)


async def test_restore_drill(database_url: str, restore_target: str, tmp_path: Path) -> None:
    await write_rows(database_url)
    created = backup("create", url=database_url, backup_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    dumps, partial = files(tmp_path, "*.dump"), files(tmp_path, "*.partial")
    assert len(dumps) == 1 and dumps[0].stat().st_size > 0
    assert not partial

    listed = backup("list", url=database_url, backup_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert dumps[0].name in listed.stdout and "1 backup(s)" in listed.stdout

    restored = backup(
        "restore", "latest", "--target-database", restore_target,
        url=database_url, backup_dir=tmp_path,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert f"into database {restore_target}" in restored.stdout

    target_url = database_url_for(database_url, restore_target)
    verified = run("cesar_migrator", "verify", url=target_url, backup_dir=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Database ready: YES" in verified.stdout

    source, copy = await fingerprint(database_url), await fingerprint(target_url)
    assert source.keys() == copy.keys()
    assert len(source) >= 33
    assert source["mv_job_queue_backlog"][0] > 0
    assert source["agents"][0] == 20 and source["agent_events"][0] == 200
    assert source["financial_data"][0] == 50 and source["job_queue"][0] == 15
    different = {name: (source[name], copy[name]) for name in source if source[name] != copy[name]}
    assert different == {}


async def test_restore_refuses_a_non_empty_database(database_url: str, tmp_path: Path) -> None:
    created = backup("create", url=database_url, backup_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    live = database_url.rsplit("/", 1)[1]
    refused = backup(
        "restore", "latest", "--target-database", live, url=database_url, backup_dir=tmp_path
    )
    assert refused.returncode == 2
    assert f"database {live} already exists and is not empty" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_restore_names_a_missing_backup(database_url: str, tmp_path: Path) -> None:
    missing = backup(
        "restore", "nope.dump", "--target-database", "cesar_never_made",
        url=database_url, backup_dir=tmp_path,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "backup nope.dump not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_name = backup(
        "restore", "latest", "--target-database", 'x"; DROP', url=database_url, backup_dir=tmp_path
    )
    assert bad_name.returncode == 2 and "not a plain database name" in bad_name.stderr
