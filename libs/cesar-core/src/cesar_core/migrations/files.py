"""Migration files on disk: naming, grouping by version, checksums and statement splitting.

``NNN_name.sql`` holds the shared dialect; ``NNN_name.cockroach.sql`` and
``NNN_name.postgres.sql`` hold what only one engine needs and run after the shared file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sqlparse

from cesar_core.errors import DuplicateVersion, InvalidMigrationFile, MigrationError

__all__ = ["Dialect", "Migration", "default_migrations_dir", "load_migrations", "split_sql"]

Dialect = Literal["cockroachdb", "postgresql"]
_SUFFIX_DIALECT: dict[str, Dialect] = {"cockroach": "cockroachdb", "postgres": "postgresql"}
_FILE_NAME = re.compile(
    r"^(?P<version>\d{3,})_(?P<name>[a-z0-9_]+?)(?:\.(?P<only>cockroach|postgres))?\.sql$"
)


@dataclass
class Migration:
    version: int
    name: str
    shared: Path | None = None
    only: dict[Dialect, Path] = field(default_factory=dict)

    def files(self, dialect: Dialect) -> list[Path]:
        return [p for p in (self.shared, self.only.get(dialect)) if p is not None]

    def label(self) -> str:
        return f"{self.version:03d}_{self.name}"

    def checksum(self, dialect: Dialect) -> str:
        digest = hashlib.sha256()
        for path in self.files(dialect):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def statements(self, dialect: Dialect) -> list[tuple[Path, str]]:
        return [(p, stmt) for p in self.files(dialect) for stmt in split_sql(p.read_text())]


def split_sql(script: str) -> list[str]:
    """Statements of a script, without empty ones or ones that are only comments."""
    statements = []
    for raw in sqlparse.split(script):
        stripped = sqlparse.format(raw, strip_comments=True).strip().rstrip(";").strip()
        if stripped:
            statements.append(raw.strip().rstrip(";").strip())
    return statements


def default_migrations_dir() -> Path:
    """``MIGRATIONS_DIR``, else the nearest ``migrations/`` above the working directory or
    above this package (a workspace checkout), else ``/app/migrations`` (the container)."""
    if env := os.environ.get("MIGRATIONS_DIR"):
        return Path(env)
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "migrations").is_dir() and any((folder / "migrations").glob("*.sql")):
                return folder / "migrations"
    return Path("/app/migrations")


def load_migrations(directory: Path) -> list[Migration]:
    """Every migration in ``directory``, ordered by version; refuses what it cannot trust."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    by_version: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise InvalidMigrationFile(
                f"{path.name}: expected a name like 001_core_schema.sql "
                "(or 001_core_schema.cockroach.sql / .postgres.sql)"
            )
        version, name = int(match["version"]), match["name"]
        migration = by_version.setdefault(version, Migration(version, name))
        if migration.name != name:
            raise DuplicateVersion(
                f"version {version:03d} is claimed by two files: "
                f"{_first_file(migration).name} and {path.name}"
            )
        if match["only"]:
            migration.only[_SUFFIX_DIALECT[match["only"]]] = path
        else:
            migration.shared = path
    for migration in by_version.values():
        if migration.shared is None:
            raise InvalidMigrationFile(
                f"{_first_file(migration).name} has no shared file {migration.label()}.sql"
            )
    return [by_version[v] for v in sorted(by_version)]


def _first_file(migration: Migration) -> Path:
    return migration.shared or next(iter(migration.only.values()))
