"""The migrator's settings: the core ones plus where the files are and how long to wait."""

from __future__ import annotations

from pathlib import Path

from cesar_core.settings import CoreSettings
from pydantic import Field


class MigratorSettings(CoreSettings):
    migrations_dir: Path | None = Field(default=None, validation_alias="MIGRATIONS_DIR")
    wait_seconds: float = Field(default=60.0, ge=0, validation_alias="MIGRATOR_WAIT_SECONDS")
    lock_timeout: float = Field(default=300.0, gt=0, validation_alias="MIGRATOR_LOCK_TIMEOUT")
