from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from typing import Any

import pytest
from cesar_core import redaction
from cesar_core.logging import configure_logging, redact

try:  # Python 3.11+ names them re._parser / re._constants
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

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


# -- redaction stays linear on hostile text (a client's model name reaches the log) ---------

#: shapes that made the old pattern quadratic (hours at this size): long scheme-like runs,
#: many "://" or "password=" that never end, one endless password; built in the child
HOSTILE_SHAPES = """{
    "scheme_run": "a" * (1 << 20) + "://",
    "many_schemes": "a://:" * (1 << 18),
    "many_users": "ab://u:p" * (1 << 17),
    "endless_password": "x://u:" + "p" * (1 << 20),
    "many_keys": "password='" * (1 << 17),
}"""

_REDACT_ALL = """
from cesar_core.logging import redact
shapes = SHAPES
for text in shapes.values():
    redact(text)
secret = "s3cr" + "et-value"
tail = redact("x" * (1 << 20) + " postgresql://u:" + secret + "@db:5432/cesar")
assert secret not in tail and tail.endswith("postgresql://u:***@db:5432/cesar"), tail[-80:]
print("done", len(shapes))
"""


def test_redaction_of_a_megabyte_of_hostile_text_completes() -> None:
    """Runs in a child process so a quadratic pattern (hours on these inputs) is stopped by
    the generous timeout instead of hanging the suite; the patterns are linear by
    construction (see test_redaction_patterns_cannot_backtrack)."""
    script = _REDACT_ALL.replace("SHAPES", HOSTILE_SHAPES)
    try:
        done = subprocess.run(
            [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("redacting 1 MiB of hostile text did not finish: the pattern backtracks")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done 5"


def _unbounded_backtracking_repeats(pattern: re.Pattern[str]) -> list[str]:
    """Repeats that may give characters back and have no upper bound (what makes a
    backtracking engine super-linear)."""
    found: list[str] = []

    def walk(items: Any) -> None:
        for op, arg in items:
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, high, sub = arg
                if high == sre_constants.MAXREPEAT:
                    found.append(f"{name}({low},...) of {list(sub)!r}")
                walk(sub)
            elif name == "POSSESSIVE_REPEAT":
                walk(arg[2])
            elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
                walk(arg[-1])
            elif name == "BRANCH":
                for branch in arg[1]:
                    walk(branch)
            elif name in ("ASSERT", "ASSERT_NOT"):
                walk(arg[1])

    walk(sre_parse.parse(pattern.pattern, pattern.flags))
    return found


@pytest.mark.parametrize("name", ["_URL_PASSWORD", "_KEY_PASSWORD", "_KV_PAIR"])
def test_redaction_patterns_cannot_backtrack(name: str) -> None:
    assert _unbounded_backtracking_repeats(getattr(redaction, name)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"postgresql://u:{FAKE_PW}@h:5432/d", "postgresql://u:***@h:5432/d"),
        (f"at redis://:{FAKE_PW}@r:6379/0.", "at redis://:***@r:6379/0."),
        (f"postgresql://h/d?sslmode=require&password={FAKE_PW}&x=1",
         "postgresql://h/d?sslmode=require&password=***&x=1"),
        (f"host=db port=5432 password={FAKE_PW} dbname=c", "host=db port=5432 password=*** dbname=c"),
        (f"host=db PASSWORD = '{FAKE_PW} x' dbname=c", "host=db PASSWORD = *** dbname=c"),
        (f"env DB_PASSWORD={FAKE_PW} sslpassword={FAKE_PW}",
         "env DB_PASSWORD=*** sslpassword=***"),
        ("no secrets: a://b and c=d", "no secrets: a://b and c=d"),
    ],
)  # fmt: skip
def test_redact_hides_every_password_form(text: str, expected: str) -> None:
    assert redact(text) == expected
