"""JSON logging for every service, with secrets redacted before a line is written."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from cesar_core.redaction import redact_text

__all__ = ["JsonFormatter", "configure_logging", "redact"]

_registered_secrets: set[str] = set()
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str) -> str:
    """Hide URL passwords, ``password=`` values and every secret registered with
    :func:`configure_logging`. Linear in ``len(text)``: log lines carry client input."""
    text = redact_text(text)
    for secret in _registered_secrets:
        text = text.replace(secret, "***")
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _STANDARD_ATTRS
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(
    service: str, *, level: str = "INFO", json_lines: bool = True, secrets: list[str] | None = None
) -> None:
    """Send the root logger to stderr, one JSON object (or plain line) per record."""
    _registered_secrets.update(s for s in secrets or [] if len(s) >= 4)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(service)
        if json_lines
        else _PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
