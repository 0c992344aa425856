"""``cesar-backup create|list|restore|schedule``: back up the database and restore it elsewhere.

Exit codes: 0 done; 2 an error (bad configuration, unreachable database, a refused or failed
backup or restore), printed as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from cesar_core.backup import (
    BackupRecord,
    create_backup,
    list_backups,
    restore_backup,
    schedule_statement,
)
from cesar_core.db import connect
from cesar_core.logging import configure_logging, redact
from cesar_core.settings import load_settings

from cesar_migrator.cli import run_command
from cesar_migrator.settings import BackupSettings

__all__ = ["main"]

EXIT_OK, EXIT_ERROR = 0, 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="database URL (default: COCKROACH_DB_URL, then DATABASE_URL)",
    )
    parser = argparse.ArgumentParser(
        prog="cesar-backup",
        description="Back up the CESAR database; restore a backup into a new database.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "create",
        parents=[common],
        help="take a backup now (CockroachDB: BACKUP INTO BACKUP_URI; PostgreSQL: pg_dump "
        "into BACKUP_DIR, then drop dumps older than BACKUP_RETENTION_DAYS)",
    )
    commands.add_parser("list", parents=[common], help="list the backups, oldest first")
    restore = commands.add_parser(
        "restore", parents=[common], help="restore a backup into a new, empty database"
    )
    restore.add_argument(
        "backup",
        help="a dump file or its name in BACKUP_DIR, a CockroachDB subdirectory, or 'latest'",
    )
    restore.add_argument(
        "--target-database",
        default=None,
        help="the new database to restore into (default: <database>_restore_<UTC time>); "
        "it must not exist or be empty",
    )
    restore.add_argument(
        "--source-database",
        default=None,
        help="CockroachDB: the database name inside the backup (default: the current one)",
    )
    commands.add_parser(
        "schedule",
        parents=[common],
        help="print the CockroachDB statement for a daily full + hourly incremental schedule",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cesar-backup", _run, _parser().parse_args(argv))


async def _run(args: argparse.Namespace) -> int:
    overrides = {"database_url": args.database_url} if "database_url" in args else {}
    settings = load_settings(BackupSettings, **overrides)
    configure_logging(
        "migrator",
        level=settings.log_level,
        json_lines=settings.log_json,
        secrets=[s.get_secret_value() for s in settings.secret_fields().values()],
    )
    uri = settings.backup_uri.get_secret_value() if settings.backup_uri else None
    if args.command == "list":
        url = settings.database_url.get_secret_value() if settings.database_url else None
        backups = await list_backups(url, backup_dir=settings.backup_dir, backup_uri=uri)
        for record in backups:
            print(_describe(record))
        print(f"{len(backups)} backup(s)")
        return EXIT_OK
    url = settings.require_database_url()
    if args.command == "create":
        record = await create_backup(
            url,
            backup_dir=settings.backup_dir,
            backup_uri=uri,
            retention_days=settings.backup_retention_days,
        )
        print(f"backup created: {_describe(record)}")
        return EXIT_OK
    if args.command == "schedule":
        conn = await connect(url)
        try:
            database = str(await conn.fetchval("SELECT current_database()"))
        finally:
            await conn.close()
        print(schedule_statement(database, uri or "nodelocal://1/cesar-backups") + ";")
        return EXIT_OK
    target = args.target_database or await _default_target(url)
    result = await restore_backup(
        url,
        args.backup,
        target_database=target,
        backup_dir=settings.backup_dir,
        backup_uri=uri,
        source_database=args.source_database,
    )
    rate = ""
    if result.database_bytes and result.size_bytes and result.seconds > 0:
        rate = (
            f": {result.database_bytes / 1e6:.0f} MB of database at "
            f"{result.database_bytes / 1e6 / result.seconds:.1f} MB/s "
            f"({result.size_bytes / 1e6:.1f} MB of backup)"
        )
    print(f"restored {args.backup} into database {result.database} in {result.seconds:.1f}s{rate}")
    print(f"check it: cesar-migrate --database-url '{result.url}' verify")
    return EXIT_OK


async def _default_target(url: str) -> str:
    conn = await connect(url)
    try:
        database = str(await conn.fetchval("SELECT current_database()"))
    finally:
        await conn.close()
    return f"{database[:40]}_restore_{datetime.now(UTC):%Y%m%d%H%M%S}"


def _describe(record: BackupRecord) -> str:
    parts = [redact(record.location)]
    if record.created_at is not None:
        parts.append(record.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"))
    if record.size_bytes is not None:
        parts.append(f"{record.size_bytes / 1e6:.1f} MB")
    return "  ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
