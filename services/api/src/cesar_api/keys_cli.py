"""``cesar-api-keys``: create (prints the key once), revoke and list API keys.

cesar-api-keys create dashboard                 # read + write
cesar-api-keys create grafana --scope read      # read only
cesar-api-keys revoke dashboard
cesar-api-keys list
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from cesar_core.db import Database
from cesar_core.errors import CesarError

from cesar_api.database import write
from cesar_api.errors import ApiError, Conflict
from cesar_api.repositories import api_keys
from cesar_api.settings import load_api_settings

__all__ = ["main"]

SCOPES = ("read", "write")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cesar-api-keys", description="Manage CESAR API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("name")
    create.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        help="repeat for several; default: read and write",
    )
    revoke = sub.add_parser("revoke", help="revoke a key by name (it stops working at once)")
    revoke.add_argument("name")
    sub.add_parser("list", help="list keys (names, prefixes, scopes; never the keys)")
    return parser


async def _run(args: argparse.Namespace) -> int:
    settings = load_api_settings()
    db = await Database.open(settings.require_database_url(), min_size=1, max_size=1)
    try:
        if args.command == "create":
            name = args.name.strip()
            if not name or len(name) > 200:
                print("cesar-api-keys: the name must be 1 to 200 characters", file=sys.stderr)
                return 2
            secret = api_keys.generate_key()
            scopes = sorted(set(args.scope or SCOPES))
            try:
                await write(db, lambda conn: api_keys.create(conn, name, secret, scopes))
            except Conflict:
                print(f"cesar-api-keys: a key named {name!r} exists", file=sys.stderr)
                return 1
            print(secret)
            print(
                f"created key {name!r} (scopes: {', '.join(scopes)}); it is shown only once",
                file=sys.stderr,
            )
        elif args.command == "revoke":
            row = await write(db, lambda conn: api_keys.revoke(conn, args.name))
            if not row:
                print(f"cesar-api-keys: no key named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name!r}")
        else:
            async with db.connection() as conn:
                rows = await api_keys.list_keys(conn)
            print(f"{'name':<24} {'prefix':<14} {'scopes':<12} {'state':<8} last used")
            for row in rows:
                state = "revoked" if row["revoked_at"] else "active"
                used = row["last_used_at"].isoformat() if row["last_used_at"] else "-"
                print(
                    f"{row['name']:<24} {row['key_prefix']:<14} {','.join(row['scopes']):<12} "
                    f"{state:<8} {used}"
                )
    finally:
        await db.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = asyncio.run(_run(args))
    except (CesarError, ApiError) as exc:
        print(f"cesar-api-keys: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
