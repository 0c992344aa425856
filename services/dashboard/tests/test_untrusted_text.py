"""Text from rows, payloads and other services (sync errors, system names, ingestion sources,
unique keys, job errors) is shown as text, never rendered as Markdown: a value like
``![x](http://...)`` must not become a remote image, nor ``[a](javascript:...)`` a link."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from cesar_dashboard.ui import plain
from streamlit.testing.v1 import AppTest

Seed = Callable[..., Any]
OpenPage = Callable[[str], AppTest]

IMAGE = "![x](http://attacker.test/pixel.png)"
LINK = "[a](javascript:alert(1))"
DIRECTIVE = ":red[alarm] www.attacker.test <b>bold</b>"

HOSTILE = """
INSERT INTO sync_status (system_name, last_sync_at, last_success_at, status, records_synced,
                         last_error)
VALUES ($1, now(), now() - INTERVAL '2 hours', 'error', 7, $2);
"""
HOSTILE_INGESTION = """
INSERT INTO ingestion_log (source, status, rows_total, rows_ok, rows_failed, error_message,
                           errors, started_at, finished_at)
VALUES ($1, 'failed', 1, 0, 1, $2, '[]', now() - INTERVAL '1 hour', now())
"""
HOSTILE_JOB = """
INSERT INTO job_queue (job_type, payload, status, attempts, max_attempts, unique_key, last_error,
                       finished_at)
VALUES ('sync.supabase', '{"note": "![p](http://attacker.test/p.png)"}', 'failed', 1, 1, $1, $2,
        now())
"""

# elements whose body Streamlit renders as Markdown
MARKDOWN_ELEMENTS = ("markdown", "caption", "error", "warning", "info", "success", "title")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def markdown_bodies(at: AppTest) -> list[str]:
    bodies = [str(e.value) for kind in MARKDOWN_ELEMENTS for e in getattr(at, kind)]
    bodies += [str(e.value) for e in at.subheader] + [str(m.label) for m in at.metric]
    return bodies


def shown_as_text(at: AppTest) -> str:
    """Everything a reader sees: Markdown bodies with their escapes undone, code and text."""
    parts = [_ESCAPE.sub(r"\1", body) for body in markdown_bodies(at)]
    parts += [str(e.value) for e in at.code] + [str(e.value) for e in at.text]
    return "\n".join(parts)


def assert_not_markdown(at: AppTest, *values: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    for body in markdown_bodies(at):
        for value in values:
            assert value not in body, f"{value!r} reaches Markdown verbatim in {body!r}"
        assert "](" not in body.replace("\\](", ""), body


@pytest.fixture
async def hostile(dashboard_env: str, seed: Seed) -> None:
    await seed(HOSTILE, IMAGE, f"{LINK} {DIRECTIVE}")
    await seed(HOSTILE_INGESTION, LINK, f"{IMAGE} {DIRECTIVE}")
    await seed(HOSTILE_JOB, IMAGE, LINK)


@pytest.mark.usefixtures("hostile")
@pytest.mark.parametrize("page", ["overview", "sync_lag", "ingestion", "jobs"])
def test_untrusted_text_is_never_markdown(open_page: OpenPage, page: str) -> None:
    at = open_page(page)
    assert_not_markdown(at, IMAGE, LINK, ":red[alarm]", "<b>")
    seen = shown_as_text(at)
    expected = {
        "overview": [IMAGE, LINK],  # the lagging system, the failing source
        "sync_lag": [IMAGE, LINK, DIRECTIVE],
        "ingestion": [IMAGE, LINK, DIRECTIVE],
        "jobs": [IMAGE, LINK],  # the unique key in the caption, the last error as code
    }[page]
    for value in expected:
        assert value in seen, f"{value!r} is not shown on {page}"


def test_plain_escapes_every_markdown_character() -> None:
    assert plain(IMAGE) == r"\!\[x\]\(http\:\/\/attacker\.test\/pixel\.png\)"
    assert plain("a\nb\\c`d") == r"a b\\c\`d"
    assert plain("plain words 42") == "plain words 42"
