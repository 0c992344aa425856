"""Backups and restores of the CESAR database, on either engine.

- CockroachDB: ``BACKUP DATABASE <db> INTO <BACKUP_URI>`` (a backup collection: every run adds
  a full backup in its own dated subdirectory; the schedule in docs/operations.md adds hourly
  incrementals), ``SHOW BACKUPS IN``, ``RESTORE DATABASE ... WITH new_db_name``.
- PostgreSQL: ``pg_dump -Fc`` into ``<BACKUP_DIR>/<db>-<UTC time>.dump`` (written under a
  ``.partial`` name and renamed when complete, so a cut-short dump never looks like a backup),
  ``pg_restore --single-transaction --exit-on-error`` into a new database.

A restore never writes over a live database: the target must not exist yet (it is created) or,
on PostgreSQL, exist and be empty; anything else is refused with :class:`RestoreRefused`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from cesar_core.db import EngineInfo, connect, detect_engine, normalize_dsn
from cesar_core.errors import CesarError
from cesar_core.logging import redact
from cesar_core.settings import redact_url

__all__ = [
    "BACKUP_SUFFIX",
    "BackupError",
    "BackupRecord",
    "RestoreRefused",
    "RestoreResult",
    "create_backup",
    "database_url_for",
    "list_backups",
    "restore_backup",
    "schedule_statement",
]

BACKUP_SUFFIX = ".dump"
LATEST = "latest"
# A database name we create or quote: checked against this, never taken as it comes.
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_STAMP = "%Y%m%dT%H%M%SZ"

_CURRENT_DATABASE = "SELECT current_database()"
_DATABASE_SIZE = "SELECT pg_database_size(current_database())"
_DATABASE_EXISTS = "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1"
# Tables, views, sequences... outside the system schemas: a database with any is not empty.
_USER_RELATIONS = """
SELECT count(*) FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'crdb_internal', 'pg_extension')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp%'
"""
# CockroachDB takes the collection URI as a placeholder; the database name is an identifier
# checked against _DATABASE_NAME before it is quoted into the statement.
_CRDB_BACKUP = 'BACKUP DATABASE "{db}" INTO $1'
_CRDB_SHOW_BACKUPS = "SHOW BACKUPS IN $1"
_CRDB_RESTORE_LATEST = 'RESTORE DATABASE "{db}" FROM LATEST IN $1 WITH new_db_name = $2'
_CRDB_RESTORE_FROM = 'RESTORE DATABASE "{db}" FROM $1 IN $2 WITH new_db_name = $3'
_CRDB_SCHEDULE = (
    "CREATE SCHEDULE IF NOT EXISTS cesar_backup "
    "FOR BACKUP DATABASE \"{db}\" INTO '{uri}' "
    "RECURRING '@hourly' FULL BACKUP '@daily' "
    "WITH SCHEDULE OPTIONS first_run = 'now'"
)


class BackupError(CesarError):
    """A backup or restore could not be done; the message says why and what to do."""


class RestoreRefused(BackupError):
    """The restore target is not a new, empty database."""


@dataclass(frozen=True)
class BackupRecord:
    """One backup: a dump file (PostgreSQL) or a subdirectory of the collection (CockroachDB)."""

    location: str
    created_at: datetime | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class RestoreResult:
    database: str
    url: str
    seconds: float
    size_bytes: int | None  # the dump file (PostgreSQL)
    database_bytes: int | None = None  # the restored database, indexes included (PostgreSQL)


def _checked_name(name: str, what: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise BackupError(
            f"{what} {name!r} is not a plain database name (lower-case letters, digits and _, "
            "at most 63, not starting with a digit)"
        )
    return name


def database_url_for(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(normalize_dsn(url))
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _open(url: str) -> tuple[asyncpg.Connection, EngineInfo]:
    conn = await connect(url)
    try:
        return conn, await detect_engine(conn)
    except BaseException:
        await conn.close()
        raise


def _pg_error(exc: asyncpg.PostgresError) -> BackupError:
    return BackupError(redact(f"the database refused: {exc}"))


# --- create -----------------------------------------------------------------------------


async def create_backup(
    url: str,
    *,
    backup_dir: Path,
    backup_uri: str | None,
    retention_days: float | None = None,
    now: datetime | None = None,
) -> BackupRecord:
    """Back up the database at ``url``; on PostgreSQL also prune dumps past retention."""
    conn, engine = await _open(url)
    try:
        database = _checked_name(await conn.fetchval(_CURRENT_DATABASE), "the database")
        if engine.is_cockroach:
            return await _crdb_backup(conn, database, _require_uri(backup_uri))
    except asyncpg.PostgresError as exc:
        raise _pg_error(exc) from exc
    finally:
        await conn.close()
    record = await _pg_dump(url, database, backup_dir, now or datetime.now(UTC))
    if retention_days is not None:
        prune_dumps(backup_dir, database, keep_days=retention_days, now=now)
    return record


def _require_uri(backup_uri: str | None) -> str:
    if not backup_uri:
        raise BackupError(
            "BACKUP_URI is not set: on CockroachDB backups go to a collection URI "
            "(nodelocal://1/cesar-backups, s3://..., gs://..., external://...)"
        )
    return backup_uri


async def _crdb_backup(conn: asyncpg.Connection, database: str, uri: str) -> BackupRecord:
    await conn.execute(_CRDB_BACKUP.format(db=database), uri)
    paths = [str(r["path"]) for r in await conn.fetch(_CRDB_SHOW_BACKUPS, uri)]
    return BackupRecord(location=paths[-1] if paths else uri)


def _libpq_args(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password (kept out of the process list) and the env carrying it."""
    parts = urlsplit(normalize_dsn(url))
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts), env


async def _run_tool(args: Sequence[str], env: dict[str, str], what: str) -> None:
    tool = args[0]
    if shutil.which(tool) is None:
        raise BackupError(
            f"{tool} is not installed (or not on PATH): install the PostgreSQL client "
            "(Debian/Ubuntu: apt-get install postgresql-client), at least the server's version"
        )
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        detail = redact(stderr.decode(errors="replace").strip()[-2000:]) or "no message"
        raise BackupError(f"{what} failed ({tool} exit {process.returncode}): {detail}")


def _new_dump_path(backup_dir: Path, database: str, now: datetime) -> Path:
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create BACKUP_DIR {backup_dir}: {exc.strerror}") from exc
    final = backup_dir / f"{database}-{now.astimezone(UTC).strftime(_STAMP)}{BACKUP_SUFFIX}"
    if final.exists():
        raise BackupError(f"{final} already exists; a backup was taken this very second")
    return final


async def _pg_dump(url: str, database: str, backup_dir: Path, now: datetime) -> BackupRecord:
    final = _new_dump_path(backup_dir, database, now)
    partial = final.with_name(final.name + ".partial")
    dsn, env = _libpq_args(url)
    try:
        await _run_tool(["pg_dump", "-Fc", "--dbname", dsn, "--file", str(partial)], env, "backup")
        partial.rename(final)
    finally:
        partial.unlink(missing_ok=True)
    return BackupRecord(str(final), now, final.stat().st_size)


def _dump_time(path: Path, database: str | None) -> datetime | None:
    stem = path.name[: -len(BACKUP_SUFFIX)]
    name, _, stamp = stem.rpartition("-")
    if database is not None and name != database:
        return None
    try:
        return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def _dumps(backup_dir: Path, database: str | None = None) -> list[tuple[datetime, Path]]:
    if not backup_dir.is_dir():
        return []
    found = []
    for path in backup_dir.glob(f"*{BACKUP_SUFFIX}"):
        taken = _dump_time(path, database)
        if taken is not None:
            found.append((taken, path))
    return sorted(found)


def prune_dumps(
    backup_dir: Path, database: str, *, keep_days: float, now: datetime | None = None
) -> list[Path]:
    """Delete this database's dumps older than ``keep_days``; the newest is always kept."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    dumps = _dumps(backup_dir, database)
    removed = []
    for taken, path in dumps[:-1]:
        if taken < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# --- list -------------------------------------------------------------------------------


async def list_backups(
    url: str | None, *, backup_dir: Path, backup_uri: str | None
) -> list[BackupRecord]:
    """Backups oldest first: the collection's subdirectories, or the dump files."""
    if url is not None:
        conn, engine = await _open(url)
        try:
            if engine.is_cockroach:
                uri = _require_uri(backup_uri)
                rows = await conn.fetch(_CRDB_SHOW_BACKUPS, uri)
                return [BackupRecord(str(r["path"])) for r in rows]
        except asyncpg.PostgresError as exc:
            raise _pg_error(exc) from exc
        finally:
            await conn.close()
    return [
        BackupRecord(str(path), taken, path.stat().st_size) for taken, path in _dumps(backup_dir)
    ]


# --- restore ----------------------------------------------------------------------------


async def restore_backup(
    url: str,
    backup: str,
    *,
    target_database: str,
    backup_dir: Path,
    backup_uri: str | None,
    source_database: str | None = None,
) -> RestoreResult:
    """Restore ``backup`` (a dump file, a collection subdirectory, or ``latest``) into
    ``target_database`` on the server of ``url``, which must be new or empty."""
    target = _checked_name(target_database, "the target database")
    conn, engine = await _open(url)
    dump: Path | None = None
    size: int | None = None
    try:
        source = source_database or await conn.fetchval(_CURRENT_DATABASE)
        await _refuse_live_target(conn, url, target)
        started = time.perf_counter()
        if engine.is_cockroach:
            source = _checked_name(source, "the source database")
            await _crdb_restore(conn, source, backup, target, _require_uri(backup_uri))
        else:
            dump = _find_dump(backup, backup_dir)
            size = dump.stat().st_size
            await _create_database(conn, target)
    except asyncpg.PostgresError as exc:
        raise _pg_error(exc) from exc
    finally:
        await conn.close()
    target_url = database_url_for(url, target)
    if dump is not None:
        dsn, env = _libpq_args(target_url)
        await _run_tool(
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--dbname",
                dsn,
                str(dump),
            ],
            env,
            "restore",
        )
    elapsed = time.perf_counter() - started
    restored_bytes = None
    if dump is not None:
        restored = await connect(target_url)
        try:
            restored_bytes = int(await restored.fetchval(_DATABASE_SIZE))
        finally:
            await restored.close()
    return RestoreResult(target, redact_url(target_url), elapsed, size, restored_bytes)


async def _refuse_live_target(conn: asyncpg.Connection, url: str, target: str) -> None:
    if not await conn.fetchval(_DATABASE_EXISTS, target):
        return
    try:
        other = await connect(database_url_for(url, target))
    except CesarError as exc:
        raise RestoreRefused(f"database {target} exists and cannot be inspected: {exc}") from exc
    try:
        relations = await other.fetchval(_USER_RELATIONS)
    finally:
        await other.close()
    if relations:
        raise RestoreRefused(
            f"database {target} already exists and is not empty ({relations} tables, views "
            "or sequences): a restore goes into a new, empty database only; pick another "
            "target name (--target-database)"
        )
    if (await detect_engine(conn)).is_cockroach:
        raise RestoreRefused(
            f"database {target} already exists: on CockroachDB RESTORE creates the target "
            f"itself; drop the empty database first (DROP DATABASE {target}) or pick another name"
        )


async def _create_database(conn: asyncpg.Connection, target: str) -> None:
    if not await conn.fetchval(_DATABASE_EXISTS, target):
        await conn.execute(f'CREATE DATABASE "{target}"')


def _find_dump(backup: str, backup_dir: Path) -> Path:
    if backup.lower() == LATEST:
        dumps = _dumps(backup_dir)
        if not dumps:
            raise BackupError(f"no backup in {backup_dir} (BACKUP_DIR); nothing to restore")
        return dumps[-1][1]
    for candidate in (Path(backup), backup_dir / backup):
        if candidate.is_file():
            return candidate
    raise BackupError(
        f"backup {backup} not found (looked for the file as given and in {backup_dir}); "
        "`cesar-backup list` shows the backups"
    )


async def _crdb_restore(
    conn: asyncpg.Connection, source: str, backup: str, target: str, uri: str
) -> None:
    if backup.lower() == LATEST:
        await conn.execute(_CRDB_RESTORE_LATEST.format(db=source), uri, target)
    else:
        await conn.execute(_CRDB_RESTORE_FROM.format(db=source), backup, uri, target)


def schedule_statement(database: str, uri: str) -> str:
    """CockroachDB: the schedule for a daily full backup and hourly incrementals."""
    if "'" in uri:
        raise BackupError("BACKUP_URI must not contain a quote")
    return _CRDB_SCHEDULE.format(db=_checked_name(database, "the database"), uri=uri)
