"""``cesar-migrate apply|status|verify|plan [--database-url URL]``.

Exit codes: 0 done; 1 not ready (``status``: files pending, ``verify``: something missing);
2 an error (bad configuration, unreachable database, bad migration files, a failed statement).
Expected errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path

from cesar_core.errors import CesarError
from cesar_core.logging import configure_logging, redact
from cesar_core.migrations import (
    Migration,
    Migrator,
    Verification,
    default_migrations_dir,
    load_migrations,
)
from cesar_core.settings import load_settings, redact_url

from cesar_migrator.settings import MigratorSettings

EXIT_OK, EXIT_NOT_READY, EXIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="database URL (default: COCKROACH_DB_URL, then DATABASE_URL)",
    )
    common.add_argument(
        "--migrations-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="folder of NNN_name.sql files (default: MIGRATIONS_DIR or ./migrations)",
    )
    common.add_argument(
        "--wait",
        type=float,
        dest="wait_seconds",
        default=argparse.SUPPRESS,
        help="seconds to keep retrying an unreachable database (default: 60)",
    )
    parser = argparse.ArgumentParser(
        prog="cesar-migrate", description="Apply and check the CESAR schema.", parents=[common]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("apply", "apply every pending migration"),
        ("status", "list migrations; exit 1 when some are pending"),
        ("verify", "check critical tables and views; exit 1 when something is missing"),
        ("plan", "print the SQL that apply would run, apply nothing"),
    ):
        commands.add_parser(name, help=text, parents=[common])
    return parser


def run_command(
    prog: str,
    command: Callable[[argparse.Namespace], Coroutine[object, object, int]],
    args: argparse.Namespace,
) -> int:
    """Run one command of a CLI: its exit code, or one line on stderr and exit 2 for a
    CesarError (secrets redacted) or Ctrl-C; never a traceback."""
    try:
        return asyncio.run(command(args))
    except CesarError as exc:
        print(f"{prog}: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cesar-migrate", _run, _parser().parse_args(argv))


async def _run(args: argparse.Namespace) -> int:
    overrides = {
        k: v for k, v in vars(args).items() if k in MigratorSettings.model_fields and v is not None
    }
    settings = load_settings(MigratorSettings, **overrides)
    configure_logging("migrator", level=settings.log_level, json_lines=settings.log_json)
    url = settings.require_database_url()
    directory = settings.migrations_dir or default_migrations_dir()

    def waiting(reason: str, delay: float) -> None:
        print(f"waiting for the database ({reason}); retrying in {delay:.1f}s", file=sys.stderr)

    async with Migrator.connect(
        url, directory, wait_seconds=settings.wait_seconds, on_retry=waiting
    ) as migrator:
        engine = migrator.engine
        print(f"database: {engine.name} {engine.version} at {redact_url(url)}")
        command = {"apply": _apply, "status": _status, "verify": _verify, "plan": _plan}
        return await command[args.command](migrator, settings)


async def _apply(migrator: Migrator, settings: MigratorSettings) -> int:
    def applied(migration: Migration, elapsed_ms: int) -> None:
        print(f"  applied {migration.label()} ({elapsed_ms} ms)", flush=True)

    done = await migrator.apply(lock_timeout=settings.lock_timeout, on_applied=applied)
    total = len(await migrator.applied())
    print(f"applied {len(done)} migration(s); {total} in schema_migrations; schema up to date")
    return EXIT_OK


async def _status(migrator: Migrator, settings: MigratorSettings) -> int:
    pending = {m.version for m in await migrator.pending()}
    applied = {a.version: a for a in await migrator.applied()}
    for migration in load_migrations(migrator.directory):
        record = applied.get(migration.version)
        state = (
            f"applied {record.applied_at:%Y-%m-%d %H:%M:%S} ({record.execution_ms} ms)"
            if record
            else "PENDING"
        )
        print(f"  {migration.label():40s} {state}")
    print(f"{len(applied)} applied, {len(pending)} pending")
    return EXIT_NOT_READY if pending else EXIT_OK


async def _plan(migrator: Migrator, settings: MigratorSettings) -> int:
    pending = await migrator.pending()
    for migration in pending:
        for path, statement in migration.statements(migrator.engine.name):
            print(f"-- {path.name}\n{statement};\n")
    print(f"-- {len(pending)} migration(s) pending; nothing was applied")
    return EXIT_OK


async def _verify(migrator: Migrator, settings: MigratorSettings) -> int:
    result = await migrator.verify()
    _print_verification(result)
    return EXIT_OK if result.ready else EXIT_NOT_READY


def _print_verification(result: Verification) -> None:
    print(f"Tables: {result.table_count}")
    for name, count in result.row_counts.items():
        print(f"  {'✓' if count is not None else '✗'} {name:28s} {_rows(count)}")
    print(f"Materialized views: {sum(c is not None for c in result.views.values())}")
    for name, count in result.views.items():
        print(f"  {'✓' if count is not None else '✗'} {name:28s} {_rows(count)}")
    print(f"Migrations: {result.applied} applied, {result.pending} pending")
    if result.ready:
        print("Database ready: YES")
    else:
        missing = ", ".join(result.missing) or f"{result.pending} pending migration(s)"
        print(f"Database ready: NO (missing: {missing}); run `cesar-migrate apply`")


def _rows(count: int | None) -> str:
    return "MISSING" if count is None else f"{count} rows"


if __name__ == "__main__":
    sys.exit(main())
