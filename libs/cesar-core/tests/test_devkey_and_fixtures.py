"""The keys operator tools mint (``make dev``'s development key, ``make verify``'s temporary
key) and the CockroachDB reset of the test plugin, run here on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cesar_core import apikeys
from cesar_core.db import connect
from cesar_core.devkey import KEY_NAME, ensure_dev_key, main
from cesar_core.testing import _describe, engine_under_test, reset_shared_database


async def _active_names(url: str) -> list[str]:
    conn = await connect(url)
    try:
        rows = await conn.fetch("SELECT name FROM api_keys WHERE revoked_at IS NULL ORDER BY name")
        return [r[0] for r in rows]
    finally:
        await conn.close()


async def test_dev_key_is_created_then_reused_then_replaced_when_revoked(database_url: str) -> None:
    first, created = await ensure_dev_key(database_url, "")
    assert created and first.startswith(apikeys.KEY_PREFIX)
    again, created = await ensure_dev_key(database_url, first)
    assert (again, created) == (first, False)
    conn = await connect(database_url)
    try:
        await apikeys.revoke(conn, KEY_NAME)
        stored = await conn.fetchval("SELECT key_hash FROM api_keys WHERE name = $1", KEY_NAME)
        assert stored == apikeys.hash_key(first)
    finally:
        await conn.close()
    replaced, created = await ensure_dev_key(database_url, first)
    assert created and replaced != first
    assert await _active_names(database_url) == [KEY_NAME]


def test_dev_key_cli_refuses_production(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/x?sslmode=require")
    assert main(["--key-file", str(tmp_path / "k")]) == 2
    assert "production" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


def test_dev_key_cli_says_what_is_wrong_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/x")
    assert main(["--key-file", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cesar-dev-key: ") and "Traceback" not in err


def test_the_api_format_is_the_one_the_tools_mint() -> None:
    api = pytest.importorskip("cesar_api.repositories.api_keys")
    secret = apikeys.generate_key()
    assert api.hash_key(secret) == apikeys.hash_key(secret)
    assert api.KEY_PREFIX == apikeys.KEY_PREFIX


async def test_shared_database_reset_empties_tables_and_keeps_seeds(database_url: str) -> None:
    """What the CockroachDB fixture does between tests, checked here on a PostgreSQL copy."""
    shared = await _describe(database_url)
    assert "routing_rules" in shared.seeds, "the migrations seed routing_rules"
    assert shared.delete_order.index("agent_events") < shared.delete_order.index("agents")
    conn = await connect(database_url)
    try:
        seeded = await conn.fetchval("SELECT count(*) FROM routing_rules")
        await apikeys.put_key(conn, "left-behind", apikeys.generate_key(), ["read"])
        agent = await conn.fetchval(
            "INSERT INTO agents (name, agent_type) VALUES ('a1', 'planner') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO agent_events (agent_id, event_type, payload) VALUES ($1, 'e', $2::JSONB)",
            agent,
            json.dumps({"n": 1}),
        )
        await conn.execute("DELETE FROM routing_rules")
    finally:
        await conn.close()
    await reset_shared_database(shared)
    conn = await connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0
        assert await conn.fetchval("SELECT count(*) FROM agents") == 0
        assert await conn.fetchval("SELECT count(*) FROM agent_events") == 0
        assert await conn.fetchval("SELECT count(*) FROM routing_rules") == seeded
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
    finally:
        await conn.close()


@pytest.mark.engine("cockroach", reason="checks the engine marker itself")
def test_engine_marker_skips_on_the_other_engine() -> None:
    assert engine_under_test() == "cockroach"


@pytest.mark.engine("postgresql")
def test_engine_marker_runs_on_its_engine() -> None:
    assert engine_under_test() == "postgresql"
