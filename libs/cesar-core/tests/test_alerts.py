"""ERROR/CRITICAL log records land in system_alerts: deduplicated, counted, redacted, bounded,
written by a background thread that survives (and never logs about) a database outage."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from cesar_core.alerts import AlertHandler, fingerprint, install_alert_handler
from cesar_core.testing import admin_url, database_named, drop_database

FAKE_PW = "fake-" + "pw-7781"  # built at runtime: no credential-looking URL in the file
ALERTS = (
    "SELECT alert_key, component, severity, message, labels, occurrences FROM system_alerts "
    "ORDER BY severity, message"
)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test.alerts.{uuid.uuid4().hex[:6]}")
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def attach(log: logging.Logger, url: str, **options: object) -> AlertHandler:
    handler = AlertHandler("worker", url, flush_seconds=0.05, **options).start()  # type: ignore[arg-type]
    log.addHandler(handler)
    return handler


async def alerts(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(ALERTS)
    finally:
        await conn.close()


async def test_errors_are_deduplicated_counted_and_redacted(
    database_url: str, logger: logging.Logger
) -> None:
    handler = attach(logger, database_url)
    logger.info("not an alert")
    logger.warning("not an alert either")
    for n in range(5):
        logger.error("job %s failed: cannot reach %s", uuid.uuid4(), f"redis://u:{FAKE_PW}@h:{n}")
    assert handler.flush_now()
    for _ in range(3):
        logger.error("job %s failed: cannot reach %s", uuid.uuid4(), "redis://h")
    try:
        raise RuntimeError("disk full")
    except RuntimeError:
        logger.critical("giving up after %d tries", 3, exc_info=True)
    assert handler.flush_now()

    rows = await alerts(database_url)
    assert [(r["severity"], r["occurrences"]) for r in rows] == [("critical", 1), ("error", 8)]
    critical, error = rows
    assert critical["component"] == "worker" and critical["message"] == "giving up after 3 tries"
    assert '"exception": "RuntimeError: disk full"' in critical["labels"]
    assert error["message"].endswith("cannot reach redis://h")
    assert error["alert_key"].startswith("log:worker:")
    assert FAKE_PW not in str([dict(r) for r in rows])


async def test_a_flood_of_distinct_errors_is_bounded(
    database_url: str, logger: logging.Logger
) -> None:
    handler = attach(logger, database_url, max_pending=3)
    for n in range(50):
        logger.error(f"distinct failure {'abcdefghijklmnopqrstuvwxyz'[n % 26]}{'x' * (n // 26)}")
    assert handler.flush_now()
    rows = await alerts(database_url)
    assert len(rows) <= 3 + 1
    dropped = [r for r in rows if r["alert_key"].endswith(":alerts-dropped")]
    assert dropped and "dropped" in dropped[0]["message"]
    assert sum(r["occurrences"] for r in rows) == 50


@pytest.mark.slow
async def test_an_outage_keeps_the_batch_and_never_recurses(
    logger: logging.Logger, template_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"cesar_alerts_{uuid.uuid4().hex[:10]}"
    url = database_named(admin_url(), name)  # does not exist yet: every flush fails
    root_records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            root_records.append(record)

    collector = Collect()
    logging.getLogger().addHandler(collector)
    handler = attach(logger, url)
    try:
        for _ in range(4):
            logger.error("upstream refused")
        assert handler.flush_now()
        assert handler.flush_now()
        err = capsys.readouterr().err
        assert err.count("cannot write system_alerts") == 1  # once per outage, not per flush
        assert not [r for r in root_records if r.levelno >= logging.ERROR]  # nothing logged

        template = urlsplit(template_database_url).path.lstrip("/")
        admin = await asyncpg.connect(admin_url())
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await admin.close()
        logger.error("upstream refused")
        assert handler.flush_now()
        rows = await alerts(url)
        assert [(r["message"], r["occurrences"]) for r in rows] == [("upstream refused", 5)]
    finally:
        logging.getLogger().removeHandler(collector)
        logger.removeHandler(handler)
        handler.close()
        await drop_database(name)


def test_fingerprint_ignores_ids_and_numbers_but_not_the_logger() -> None:
    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)

    a = fingerprint("api", record("cesar.x", f"job {uuid.uuid4()} failed after 3 tries"))
    b = fingerprint("api", record("cesar.x", f"job {uuid.uuid4()} failed after 4 tries"))
    c = fingerprint("api", record("cesar.y", f"job {uuid.uuid4()} failed after 4 tries"))
    d = fingerprint("worker", record("cesar.x", f"job {uuid.uuid4()} failed after 4 tries"))
    assert a == b and len({a, c, d}) == 3


async def test_install_adds_the_handler_to_the_root_logger(database_url: str) -> None:
    assert install_alert_handler("api", None) is None  # no database configured: nothing
    handler = install_alert_handler("api", database_url, flush_seconds=0.05)
    assert handler is not None
    try:
        logging.getLogger("cesar_api.somewhere").error("request %s crashed", 17)
        assert handler.flush_now()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    rows = await alerts(database_url)
    assert [(r["component"], r["message"]) for r in rows] == [("api", "request 17 crashed")]
