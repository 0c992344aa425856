"""The project's docs stand alone: nothing points outside the repository, and the portable SQL
rules are in the repository itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"DESIGN\.md|\.\./shared/|\]\(\.\./")


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--", *patterns], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [REPO / line for line in out.splitlines() if line]


def test_no_doc_or_config_points_outside_the_repository() -> None:
    files = tracked(
        "*.md", "compose*.yaml", "Makefile", "Procfile.dev", ".env.example", "scripts/*"
    )
    assert files
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            assert not OUTSIDE.search(line), f"{path.relative_to(REPO)}:{number}: {line.strip()}"


def test_sql_portability_rules_are_in_the_repository() -> None:
    guide = (REPO / "docs" / "sql-portability.md").read_text()
    for rule in ("SERIAL", "IF NOT EXISTS", "40001", "SET LOCAL", "ttl_expiration_expression"):
        assert rule in guide, rule
    assert "docs/sql-portability.md" in (REPO / "README.md").read_text()


def test_readme_says_which_compose_version_and_how_commands_run() -> None:
    readme = (REPO / "README.md").read_text()
    assert "Compose 2.24 or newer" in readme and "Compose v2." not in readme
    # Console scripts are not on PATH outside the virtualenv: commands are written as they run.
    for line in readme.splitlines():
        for match in re.finditer(r"(?<![\w/.-])cesar-api-keys (create|list|revoke)", line):
            before = line[: match.start()]
            assert before.rstrip().endswith("uv run") or "run --rm" in before, line
