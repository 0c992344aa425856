"""The migration engine: library code used by ``cesar-migrate``, the test fixtures and health."""

from cesar_core.migrations.files import (
    Dialect,
    Migration,
    default_migrations_dir,
    load_migrations,
    split_sql,
)
from cesar_core.migrations.migrator import (
    AppliedMigration,
    Migrator,
    Verification,
    wait_for_database,
)
from cesar_core.migrations.schema import CRITICAL_TABLES, MATERIALIZED_VIEWS, MIN_TABLE_COUNT

__all__ = [
    "CRITICAL_TABLES",
    "MATERIALIZED_VIEWS",
    "MIN_TABLE_COUNT",
    "AppliedMigration",
    "Dialect",
    "Migration",
    "Migrator",
    "Verification",
    "default_migrations_dir",
    "load_migrations",
    "split_sql",
    "wait_for_database",
]
