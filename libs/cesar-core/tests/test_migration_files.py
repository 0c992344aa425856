from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlparse
from cesar_core.errors import DuplicateVersion, InvalidMigrationFile
from cesar_core.migrations import default_migrations_dir, load_migrations, split_sql

FORBIDDEN = {
    "SERIAL": r"\b(BIG|SMALL)?SERIAL\b",
    "triggers": r"\bCREATE\s+(OR\s+REPLACE\s+)?TRIGGER\b",
    "functions": r"\bCREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)\b",
    "DO blocks": r"^DO\b",
    "LISTEN/NOTIFY": r"^(LISTEN|NOTIFY)\b",
    "advisory locks": r"\bPG_ADVISORY",
    "CONCURRENTLY": r"\bCONCURRENTLY\b",
    "UPSERT": r"^UPSERT\b",
    "CREATE TYPE": r"\bCREATE\s+TYPE\b",
    "ADD CONSTRAINT": r"\bADD\s+CONSTRAINT\b",
    "column families": r"\bFAMILY\s+\w+\s*\(",
}


def test_split_ignores_comments_and_keeps_strings() -> None:
    script = "-- header; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT 'a;b');\n\n-- tail\n"
    assert split_sql(script) == [
        "-- header; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT 'a;b')"
    ]


def test_sibling_files_are_grouped(tmp_path: Path) -> None:
    (tmp_path / "001_core.sql").write_text("SELECT 1;")
    (tmp_path / "001_core.cockroach.sql").write_text("SELECT 2;")
    (tmp_path / "002_more.sql").write_text("SELECT 3;")
    first, second = load_migrations(tmp_path)
    assert [s for _, s in first.statements("cockroachdb")] == ["SELECT 1", "SELECT 2"]
    assert [s for _, s in first.statements("postgresql")] == ["SELECT 1"]
    assert first.checksum("cockroachdb") != first.checksum("postgresql")
    assert second.version == 2


def test_duplicate_version_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 1;")
    with pytest.raises(DuplicateVersion, match=r"001_a\.sql and 001_b\.sql"):
        load_migrations(tmp_path)


def test_same_version_with_other_zero_padding_is_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")  # sorts first, names the same version
    with pytest.raises(DuplicateVersion, match=r"0001_b\.sql and 001_a\.sql"):
        load_migrations(tmp_path)


def test_default_dir_skips_a_migrations_folder_without_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "migrations").mkdir()  # e.g. a service's own empty folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIGRATIONS_DIR", raising=False)
    found = default_migrations_dir()
    assert found != tmp_path / "migrations"
    assert any(found.glob("*.sql"))


def test_orphan_sibling_is_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.postgres.sql").write_text("SELECT 1;")
    with pytest.raises(InvalidMigrationFile, match="no shared file"):
        load_migrations(tmp_path)


def test_repository_migrations_follow_the_portable_rules() -> None:
    migrations = load_migrations(default_migrations_dir())
    assert len(migrations) >= 15
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for migration in migrations:
        for dialect in ("postgresql", "cockroachdb"):
            for path, statement in migration.statements(dialect):
                code = sqlparse.format(statement, strip_comments=True)
                upper = " ".join(code.upper().split())
                for what, pattern in FORBIDDEN.items():
                    assert not re.search(pattern, upper), f"{path.name}: {what} is not portable"
                if upper.startswith("CREATE TABLE") or upper.startswith("CREATE INDEX"):
                    assert "IF NOT EXISTS" in upper, f"{path.name}: not idempotent: {upper[:80]}"
                if upper.startswith("CREATE UNIQUE INDEX"):
                    assert "IF NOT EXISTS" in upper, f"{path.name}: not idempotent: {upper[:80]}"
                assert not upper.startswith(("SET ", "BEGIN", "COMMIT")), path.name
