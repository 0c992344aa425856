"""cesar-migrate as operators run it: a real process against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from cesar_core.migrations import MATERIALIZED_VIEWS, default_migrations_dir

REPO_MIGRATIONS = default_migrations_dir()

FAKE_PW = "fake-" + "pw-7781"  # built at runtime: no credential-looking URL in the file


def migrate(*args: str, url: str | None = None, env: dict[str, str] | None = None):
    full_env = {**os.environ, "LOG_JSON": "false", **(env or {})}
    full_env.pop("COCKROACH_DB_URL", None)
    full_env.pop("DATABASE_URL", None)
    if url:
        full_env["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "cesar_migrator", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=240,
    )


async def fetch(url: str, query: str):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(REPO_MIGRATIONS, target)
    return target


async def test_apply_creates_full_schema_and_is_idempotent(empty_database_url: str) -> None:
    first = migrate("apply", url=empty_database_url)
    assert first.returncode == 0, first.stderr
    assert "database: postgresql" in first.stdout
    tables = await fetch(
        empty_database_url,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema='public' AND table_type='BASE TABLE'",
    )
    assert len(tables) >= 30
    views = {r[0] for r in await fetch(empty_database_url, "SELECT matviewname FROM pg_matviews")}
    assert views >= set(MATERIALIZED_VIEWS)

    second = migrate("apply", url=empty_database_url)
    assert second.returncode == 0, second.stderr
    assert "applied 0 migration(s)" in second.stdout
    history = await fetch(
        empty_database_url, "SELECT version, checksum, dialect, execution_ms FROM schema_migrations"
    )
    assert len(history) == len({r["version"] for r in history}) >= 15
    assert {r["dialect"] for r in history} == {"postgresql"}


async def test_database_url_flag_after_command(empty_database_url: str) -> None:
    result = migrate("status", "--database-url", empty_database_url)
    assert result.returncode == 1  # everything pending on an empty database
    assert "PENDING" in result.stdout
    assert "0 applied" in result.stdout


async def test_status_and_verify_after_apply(empty_database_url: str) -> None:
    assert migrate("apply", url=empty_database_url).returncode == 0
    status = migrate("status", url=empty_database_url)
    assert status.returncode == 0, status.stdout
    assert "0 pending" in status.stdout
    verify = migrate("verify", url=empty_database_url)
    assert verify.returncode == 0, verify.stdout
    assert "Database ready: YES" in verify.stdout
    assert "job_queue" in verify.stdout and "0 rows" in verify.stdout
    for view in MATERIALIZED_VIEWS:
        assert view in verify.stdout


async def test_verify_on_empty_database_says_what_is_missing(empty_database_url: str) -> None:
    result = migrate("verify", url=empty_database_url)
    assert result.returncode == 1
    assert "Database ready: NO" in result.stdout
    assert "agents" in result.stdout.split("missing:")[1]
    # verify is read-only: it did not even create the history table
    rows = await fetch(
        empty_database_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema='public'",
    )
    assert rows == []


async def test_plan_prints_sql_and_applies_nothing(empty_database_url: str) -> None:
    result = migrate("plan", url=empty_database_url)
    assert result.returncode == 0, result.stderr
    assert "-- 001_core_schema.sql" in result.stdout
    assert "CREATE TABLE IF NOT EXISTS" in result.stdout
    assert "nothing was applied" in result.stdout
    rows = await fetch(
        empty_database_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema='public'",
    )
    assert rows == []


async def test_concurrent_applies_record_each_file_once(empty_database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database_url, "LOG_JSON": "false"}
    env.pop("COCKROACH_DB_URL", None)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cesar_migrator",
            "apply",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    rows = await fetch(empty_database_url, "SELECT version FROM schema_migrations")
    versions = [r["version"] for r in rows]
    assert len(versions) == len(set(versions)) >= 15
    applied_counts = sorted(
        int(out.decode().split("applied ")[-1].split(" ")[0]) for out, _ in outputs
    )
    assert applied_counts == [0, 0, len(versions)]


async def test_duplicate_version_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "003_another_thing.sql").write_text("CREATE TABLE IF NOT EXISTS x (id INT8);")
    result = migrate("apply", "--migrations-dir", str(directory), url=empty_database_url)
    assert result.returncode == 2
    assert "003" in result.stderr and "003_another_thing.sql" in result.stderr
    assert "Traceback" not in result.stderr
    rows = await fetch(
        empty_database_url,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema='public' AND table_name = 'agents'",
    )
    assert rows == []


async def test_edited_applied_file_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    assert (
        migrate("apply", "--migrations-dir", str(directory), url=empty_database_url).returncode == 0
    )
    target = directory / "001_core_schema.sql"
    target.write_text(target.read_text() + "\n-- edited after the fact\n")
    result = migrate("apply", "--migrations-dir", str(directory), url=empty_database_url)
    assert result.returncode == 2
    assert "001_core_schema.sql changed after it was applied" in result.stderr
    status = migrate("status", "--migrations-dir", str(directory), url=empty_database_url)
    assert status.returncode == 2


async def test_deleted_applied_file_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    assert (
        migrate("apply", "--migrations-dir", str(directory), url=empty_database_url).returncode == 0
    )
    (directory / "015_agent_reputation.sql").unlink()
    for command in ("apply", "status", "plan", "verify"):
        result = migrate(command, "--migrations-dir", str(directory), url=empty_database_url)
        assert result.returncode == 2, (command, result.stdout)
        assert "015_agent_reputation.sql was applied but is no longer in" in result.stderr
        assert "Traceback" not in result.stderr


async def test_broken_file_leaves_nothing_behind(empty_database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "001_good.sql").write_text(
        "CREATE TABLE IF NOT EXISTS good (id INT8 PRIMARY KEY);"
    )
    (directory / "002_broken.sql").write_text(
        "CREATE TABLE IF NOT EXISTS half (id INT8 PRIMARY KEY);\n"
        "INSERT INTO half (id) VALUES (1);\n"
        "CREATE TABLE IF NOT EXISTS nope (id INT8 REFERENCES no_such_table(id));\n"
    )
    result = migrate("apply", "--migrations-dir", str(directory), url=empty_database_url)
    assert result.returncode == 2
    assert "002_broken.sql" in result.stderr
    assert "no_such_table" in result.stderr
    assert "Traceback" not in result.stderr
    tables = {
        r[0]
        for r in await fetch(
            empty_database_url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema='public'",
        )
    }
    assert "good" in tables and "half" not in tables
    versions = [
        r[0] for r in await fetch(empty_database_url, "SELECT version FROM schema_migrations")
    ]
    assert versions == [1]


def test_unreachable_database_gives_one_clear_line() -> None:
    result = migrate("apply", "--wait", "1", url="postgresql://postgres@127.0.0.1:1/cesar")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [
        line for line in result.stderr.splitlines() if line.startswith("cesar-migrate: error")
    ]
    assert len(error_lines) == 1
    assert "127.0.0.1:1" in error_lines[0] and "gave up after 1s" in error_lines[0]


def test_missing_database_url_is_a_clear_error() -> None:
    result = migrate("status")
    assert result.returncode == 2
    assert "set COCKROACH_DB_URL or DATABASE_URL" in result.stderr


def test_password_never_printed() -> None:
    result = migrate("status", "--wait", "0", url=f"postgresql://cesar:{FAKE_PW}@127.0.0.1:1/cesar")
    assert result.returncode == 2
    assert FAKE_PW not in result.stderr + result.stdout
    # the target is named by host, port and database only: no user, no password
    assert "127.0.0.1:1/cesar" in result.stderr and "cesar:" + FAKE_PW not in result.stderr
    assert "cesar@" not in result.stderr


def test_bad_file_name_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "first.sql").write_text("SELECT 1;")
    result = migrate(
        "plan",
        "--migrations-dir",
        str(directory),
        url="postgresql://postgres@127.0.0.1:5432/postgres",
    )
    assert result.returncode == 2
    assert "first.sql" in result.stderr


@pytest.mark.parametrize("bad", ["apply --wait nope", "frobnicate"])
def test_bad_arguments_are_usage_errors(bad: str) -> None:
    result = migrate(*bad.split())
    assert result.returncode == 2
    assert "usage: cesar-migrate" in result.stderr
