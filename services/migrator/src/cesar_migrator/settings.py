"""The migrator's settings: the core ones plus where the files are and how long to wait."""

from __future__ import annotations

from pathlib import Path

from cesar_core.settings import CoreSettings
from pydantic import Field, SecretStr


class MigratorSettings(CoreSettings):
    migrations_dir: Path | None = Field(default=None, validation_alias="MIGRATIONS_DIR")
    wait_seconds: float = Field(default=60.0, ge=0, validation_alias="MIGRATOR_WAIT_SECONDS")
    lock_timeout: float = Field(default=300.0, gt=0, validation_alias="MIGRATOR_LOCK_TIMEOUT")


class BackupSettings(MigratorSettings):
    """``cesar-backup``: where backups go and how long dump files are kept."""

    # CockroachDB: a backup collection URI (nodelocal://1/..., s3://..., external://...);
    # may carry cloud credentials, so it is a secret and never printed in full
    backup_uri: SecretStr | None = Field(default=None, validation_alias="BACKUP_URI")
    # PostgreSQL: the folder of pg_dump files
    backup_dir: Path = Field(default=Path("backups"), validation_alias="BACKUP_DIR")
    backup_retention_days: float = Field(
        default=14.0, gt=0, validation_alias="BACKUP_RETENTION_DAYS"
    )
