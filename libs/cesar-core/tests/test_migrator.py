"""The migration engine against a real PostgreSQL: what it refuses once files are applied."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from cesar_core.errors import ChecksumDrift
from cesar_core.migrations import Migrator


def write_migrations(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "001_first.sql").write_text("CREATE TABLE IF NOT EXISTS first (id INT8);")
    (directory / "002_second.sql").write_text("CREATE TABLE IF NOT EXISTS second (id INT8);")
    (directory / "003_third.sql").write_text("CREATE TABLE IF NOT EXISTS third (id INT8);")
    return directory


async def applied_versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()


async def test_deleted_applied_file_is_refused_by_name(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = write_migrations(tmp_path / "migrations")
    async with Migrator.connect(empty_database_url, directory) as migrator:
        assert len(await migrator.apply()) == 3
        (directory / "002_second.sql").unlink()
        (directory / "004_fourth.sql").write_text("CREATE TABLE IF NOT EXISTS fourth (id INT8);")
        for step in (migrator.pending, migrator.apply, migrator.verify):
            with pytest.raises(
                ChecksumDrift, match=r"002_second\.sql was applied but is no longer"
            ):
                await step()
    assert await applied_versions(empty_database_url) == [1, 2, 3]  # 004 was not applied


@pytest.mark.parametrize("new_name", ["renamed", "zz_renamed"])  # sorting before and after
async def test_applied_file_replaced_under_another_name_is_refused(
    empty_database_url: str, tmp_path: Path, new_name: str
) -> None:
    directory = write_migrations(tmp_path / "migrations")
    async with Migrator.connect(empty_database_url, directory) as migrator:
        await migrator.apply()
        content = (directory / "003_third.sql").read_text()
        (directory / "003_third.sql").unlink()
        (directory / f"003_{new_name}.sql").write_text(content)
        with pytest.raises(
            ChecksumDrift, match=rf"003_third\.sql .*003_{new_name}\.sql now claims"
        ):
            await migrator.pending()


async def test_deleted_engine_sibling_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations")
    sibling = directory / "002_second.postgres.sql"
    sibling.write_text("CREATE INDEX IF NOT EXISTS second_id ON second (id);")
    async with Migrator.connect(empty_database_url, directory) as migrator:
        await migrator.apply()
        sibling.unlink()
        with pytest.raises(ChecksumDrift, match=r"002_second\.sql changed after it was applied"):
            await migrator.pending()


async def test_edited_applied_file_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "migrations")
    async with Migrator.connect(empty_database_url, directory) as migrator:
        await migrator.apply()
        (directory / "001_first.sql").write_text("CREATE TABLE IF NOT EXISTS other (id INT8);")
        with pytest.raises(ChecksumDrift, match=r"001_first\.sql changed after it was applied"):
            await migrator.apply()
