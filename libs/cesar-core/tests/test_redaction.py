"""What may be shown of a connection target: host, port and database, nothing else."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from cesar_core.db import Database, connect
from cesar_core.errors import DatabaseUnavailable
from cesar_core.redaction import describe_target

FAKE_PW = "fake-" + "pw-7781"  # built at runtime: no credential-looking URL in the file


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://u:{FAKE_PW}@db:5432/cesar?sslmode=require", "db:5432/cesar"),
        (f"postgresql://u@db/cesar?password={FAKE_PW}", "db/cesar"),
        (f"cockroachdb://root@h1:26257,h2:26257/cesar?sslpassword={FAKE_PW}",
         "h1:26257,h2:26257/cesar"),
        (f"redis://:{FAKE_PW}@redis:6379/0", "redis:6379/0"),
        (f"rediss://default:{FAKE_PW}@[::1]:6380", "[::1]:6380"),
        ("postgresql:///cesar?host=/run/postgresql&port=5433", "/run/postgresql:5433/cesar"),
        (f"host=db port=5432 dbname=cesar user=u password={FAKE_PW}", "db:5432/cesar"),
        (f"dbname=cesar password='{FAKE_PW} x'", "localhost/cesar"),
        (FAKE_PW, "(unrecognised connection target)"),
    ],
)  # fmt: skip
def test_describe_target_keeps_host_port_and_database_only(url: str, expected: str) -> None:
    assert describe_target(url) == expected


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_errors_name_the_host_only(database_url: str) -> None:
    """Every echo of a target (API /health and /readyz, sync_status, job errors) comes from
    these messages."""
    port = _closed_port()
    with pytest.raises(DatabaseUnavailable) as unreachable:
        await connect(f"postgresql://u@127.0.0.1:{port}/cesar?password={FAKE_PW}", timeout=5)
    message = str(unreachable.value)
    assert f"127.0.0.1:{port}/cesar" in message and FAKE_PW not in message
    assert "password" not in message

    parts = urlsplit(database_url)
    missing = parts._replace(path="/no_such_database", query=f"password={FAKE_PW}").geturl()
    with pytest.raises(DatabaseUnavailable) as refused:
        await Database.open(missing, min_size=1, max_size=1, timeout=5)
    message = str(refused.value)
    assert f"{parts.netloc.rpartition('@')[2]}/no_such_database refused" in message
    assert FAKE_PW not in message and "password" not in message
