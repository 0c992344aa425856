"""The exceptions cesar-core raises, as one tree.

    CesarError                      root of everything raised on purpose
    ├── ConfigurationError          settings missing, invalid or unsafe for the environment
    ├── DatabaseError               a database operation failed (asyncpg errors are mapped here)
    │   ├── DatabaseUnavailable     cannot connect, or the connection was lost
    │   └── SerializationFailure    SQLSTATE 40001 still failing after every retry
    ├── RedisUnavailable            Redis cannot be reached
    ├── MigrationError              the migration files or the schema history are not usable
    │   ├── InvalidMigrationFile    a file in migrations/ has a name or content we cannot use
    │   ├── DuplicateVersion        two files claim the same version number
    │   ├── ChecksumDrift           an applied file was edited (or deleted) afterwards
    │   ├── MigrationFailed         a statement failed; names the file, the statement, the reason
    │   └── MigrationLockTimeout    another migrator held the lock for too long
    └── JobError                    the job system refused an operation
        ├── UnknownJobType          no plugin registered under that name
        ├── InvalidPayload          the payload does not match the job type's model
        ├── JobNotFound             no job with that id
        └── InvalidJobState         the operation does not apply to the job's current state

Driver exceptions (asyncpg, redis, httpx) are translated where they are caught, with
``raise ... from exc``, so callers handle only this tree.
"""

from __future__ import annotations

__all__ = [
    "CesarError",
    "ChecksumDrift",
    "ConfigurationError",
    "DatabaseError",
    "DatabaseUnavailable",
    "DuplicateVersion",
    "InvalidJobState",
    "InvalidMigrationFile",
    "InvalidPayload",
    "JobError",
    "JobNotFound",
    "MigrationError",
    "MigrationFailed",
    "MigrationLockTimeout",
    "RedisUnavailable",
    "SerializationFailure",
    "UnknownJobType",
]


class CesarError(Exception):
    """Root of every exception cesar-core raises on purpose."""


class ConfigurationError(CesarError):
    pass


class DatabaseError(CesarError):
    pass


class DatabaseUnavailable(DatabaseError):
    pass


class SerializationFailure(DatabaseError):
    pass


class RedisUnavailable(CesarError):
    pass


class MigrationError(CesarError):
    pass


class InvalidMigrationFile(MigrationError):
    pass


class DuplicateVersion(MigrationError):
    pass


class ChecksumDrift(MigrationError):
    pass


class MigrationFailed(MigrationError):
    def __init__(self, file: str, statement: str, reason: str) -> None:
        self.file, self.statement, self.reason = file, statement, reason
        first_line = " ".join(statement.split())[:160]
        super().__init__(f"{file}: {reason} (statement: {first_line})")


class MigrationLockTimeout(MigrationError):
    pass


class JobError(CesarError):
    pass


class UnknownJobType(JobError):
    pass


class InvalidPayload(JobError):
    pass


class JobNotFound(JobError):
    pass


class InvalidJobState(JobError):
    pass
