"""The tenth check of `make verify`: no CRITICAL log record in the last 15 minutes."""

from __future__ import annotations

import asyncpg
from cesar_core.stackcheck import _critical_alerts

INSERT = """
INSERT INTO system_alerts (alert_key, component, severity, status, message, occurrences,
                           last_seen_at)
VALUES ($1, $2, $3, $4, $5, $6, now() - CAST($7 AS FLOAT8) * INTERVAL '1 minute')
"""


async def test_critical_alert_fails_the_check_and_names_service_and_message(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        check = await _critical_alerts(conn)
        assert check.ok and check.detail == "none"

        await conn.execute(INSERT, "a", "worker", "error", "firing", "Redis flapped", 4, 1.0)
        await conn.execute(INSERT, "b", "api", "critical", "firing", "old and gone", 1, 20.0)
        await conn.execute(INSERT, "c", "api", "critical", "resolved", "fixed already", 1, 1.0)
        check = await _critical_alerts(conn)
        assert check.ok, check.line()
        assert "1 error alert(s)" in check.detail

        await conn.execute(INSERT, "d", "ollama-proxy", "critical", "firing", "cache lost", 3, 2.0)
        check = await _critical_alerts(conn)
        assert not check.ok
        assert check.detail == "ollama-proxy: cache lost (x3)"
        assert check.line().startswith("✗ critical log errors (15 min): ollama-proxy: cache lost")
    finally:
        await conn.close()
