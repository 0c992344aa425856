"""``cesar-dev-key``: the local development API key ``make dev`` uses when API_KEY is not set.

Prints a write key on stdout. The key is kept in a file (default ``.cesar-dev/api-key``, mode
0600, ignored by git) and reused while the database still holds it (active, same hash);
otherwise a new secret is stored under the key name ``make-dev``. Development only: refused
when ``ENVIRONMENT=production``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from cesar_core import apikeys
from cesar_core.db import connect
from cesar_core.errors import CesarError
from cesar_core.settings import CoreSettings, load_settings

__all__ = ["KEY_NAME", "ensure_dev_key", "main"]

KEY_NAME = "make-dev"
DEFAULT_KEY_FILE = Path(".cesar-dev") / "api-key"


async def ensure_dev_key(database_url: str, stored: str) -> tuple[str, bool]:
    """The development key and whether it is new (False: ``stored`` is still active)."""
    conn = await connect(database_url, timeout=10)
    try:
        if stored and await apikeys.is_active(conn, KEY_NAME, stored):
            return stored, False
        secret = apikeys.generate_key()
        await apikeys.put_key(conn, KEY_NAME, secret, ["read", "write"])
        return secret, True
    except asyncpg.PostgresError as exc:
        raise CesarError(f"cannot store the key (are the migrations applied?): {exc}") from exc
    finally:
        await conn.close()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cesar-dev-key", description="Print the local development API key of `make dev`."
    )
    parser.add_argument("--key-file", type=Path, default=DEFAULT_KEY_FILE)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(CoreSettings)
        if settings.environment == "production":
            print("cesar-dev-key: refused: ENVIRONMENT=production", file=sys.stderr)
            return 2
        key_file: Path = args.key_file
        stored = key_file.read_text().strip() if key_file.is_file() else ""
        secret, created = asyncio.run(ensure_dev_key(settings.require_database_url(), stored))
        if created:
            _write_private(key_file, secret + "\n")
    except (CesarError, OSError) as exc:
        print(f"cesar-dev-key: {exc}", file=sys.stderr)
        return 2
    state = "created" if created else "reused"
    print(f"cesar-dev-key: {state} key {KEY_NAME!r} ({args.key_file})", file=sys.stderr)
    print(secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())
