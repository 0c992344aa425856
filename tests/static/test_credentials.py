"""No tracked file may hold a credential-looking URL (``scheme://user:password@host``).

Allowed are obvious placeholders only: a password that is a variable reference (``${VAR}``,
``$VAR``, ``{name}``, ``%(name)s``), an ``<angle>`` placeholder, a redaction (``***``), or
exactly one of a few placeholder words (``password``, ``changeme``, ...). Anything else, even
``changeme123`` or ``guest``, counts as a real password.

A deliberate fake credential in a test fixture (e.g. a test of URL redaction) can be allowed by
adding its fingerprint (printed by the failing test) to ``credential-allowlist.json`` next to
this file, with the reason. Fingerprints are SHA-256 hashes, so the list never repeats the
password itself. An entry that no longer matches its file fails the suite: remove it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# scheme://[user]:password@ - the userinfo stops at whitespace, quotes, slashes or a second @.
CREDENTIAL_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,30})://"
    r"(?P<user>[^\s:/@'\"`<>]*|<[^>\s]*>|\$\{[^}\s]*\})"
    r":(?P<password>[^\s/@'\"`]+)@"
)

PLACEHOLDER_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "changeme",
        "change-me",
        "change_me",
        "placeholder",
        "redacted",
    }
)
PLACEHOLDER_PATTERNS = (
    re.compile(r"(\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?+][^}]*)?\})+"),  # ${VAR}, ${VAR:?msg}
    re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*"),  # $VAR
    re.compile(r"\{\{?\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}?\}"),  # {name}, {{ name }}
    re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)s|%s"),  # printf-style
    re.compile(r"<[^<>\s]+>"),  # <password>
    re.compile(r"\*+|x{3,}|X{3,}|\.\.\.|…"),  # redacted: ***, xxx, ...
)

MAX_BYTES = 2_000_000


ALLOWLIST = Path(__file__).with_name("credential-allowlist.json")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    url: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.url} (fingerprint {self.fingerprint})"


def fingerprint(matched: str) -> str:
    return hashlib.sha256(matched.encode()).hexdigest()


def load_allowlist(path: Path = ALLOWLIST) -> dict[str, set[str]]:
    """{file path: fingerprints}; each entry must give a reason."""
    entries = json.loads(path.read_text())["allowed"]
    allowed: dict[str, set[str]] = {}
    for entry in entries:
        assert entry.get("reason"), f"allowlist entry without a reason: {entry}"
        allowed.setdefault(entry["path"], set()).add(entry["fingerprint"])
    return allowed


def is_placeholder(password: str) -> bool:
    if password.lower() in PLACEHOLDER_WORDS:
        return True
    return any(pattern.fullmatch(password) for pattern in PLACEHOLDER_PATTERNS)


def find_credential_urls(text: str, path: str = "<text>") -> list[Finding]:
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in CREDENTIAL_URL.finditer(line):
            password = match.group("password")
            if not is_placeholder(password):
                shown = match.group(0).replace(password, "<hidden>")
                findings.append(Finding(path, number, shown, fingerprint(match.group(0))))
    return findings


def tracked_files(repo: Path) -> list[str]:
    try:
        result = subprocess.run(
            ["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True, timeout=30
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc}); nothing is tracked to scan")
    return [name for name in result.stdout.decode().split("\0") if name]


# --- the repository ---------------------------------------------------------------------------


def unallowed_findings(repo: Path, names: list[str], allowed: dict[str, set[str]]) -> list[Finding]:
    """Credential-looking URLs in ``names`` (relative to ``repo``) that the allowlist lacks."""
    findings: list[Finding] = []
    for name in names:
        path = repo / name
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        for finding in find_credential_urls(data.decode("utf-8", errors="replace"), name):
            if finding.fingerprint not in allowed.get(name, set()):
                findings.append(finding)
    return findings


def stale_allowlist_entries(repo: Path, allowed: dict[str, set[str]]) -> list[str]:
    """Entries whose file is gone or no longer holds the fingerprint: each must be removed."""
    stale = []
    for path, prints in allowed.items():
        file = repo / path
        present = (
            {f.fingerprint for f in find_credential_urls(file.read_text(), path)}
            if file.is_file()
            else set()
        )
        stale += [f"{path}: {p}" for p in sorted(prints - present)]
    return stale


def test_no_tracked_file_holds_a_credential_url(repo: Path) -> None:
    files = tracked_files(repo)
    assert files, "git ls-files listed nothing"
    findings = unallowed_findings(repo, files, load_allowlist())
    assert not findings, (
        "credential-looking URLs in tracked files. Use ${VAR}, <...> or a *_FILE secret; a "
        "deliberate test fixture goes into tests/static/credential-allowlist.json with its "
        "fingerprint and a reason:\n" + "\n".join(map(str, findings))
    )


def test_repository_allowlist_entries_all_match_something(repo: Path) -> None:
    assert stale_allowlist_entries(repo, load_allowlist()) == []


def test_allowlist_needs_reasons_allows_exactly_its_fingerprints(tmp_path: Path) -> None:
    fixture = f"DSN = 'postgresql://cesar:Zq8vLw2p{AT}db/x'\nOTHER = 'redis://:Kd93mfQ1{AT}r/0'\n"
    (tmp_path / "fixture.py").write_text(fixture)
    first, second = find_credential_urls(fixture, "fixture.py")
    listing = tmp_path / "allowlist.json"

    def write(*entries: dict[str, str]) -> dict[str, set[str]]:
        listing.write_text(json.dumps({"allowed": list(entries)}))
        return load_allowlist(listing)

    entry = {"path": "fixture.py", "fingerprint": first.fingerprint, "reason": "redaction test"}
    with pytest.raises(AssertionError, match="without a reason"):
        write({**entry, "reason": ""})
    allowed = write(entry)
    assert allowed == {"fixture.py": {first.fingerprint}}
    # the listed fingerprint is allowed, the other URL in the same file is still reported
    assert unallowed_findings(tmp_path, ["fixture.py"], allowed) == [second]
    assert stale_allowlist_entries(tmp_path, allowed) == []
    # an entry that no longer matches (edited or removed file) is reported as stale
    (tmp_path / "fixture.py").write_text(fixture.replace("Zq8vLw2p", "Zq8vLw2q"))
    assert stale_allowlist_entries(tmp_path, allowed) == [f"fixture.py: {first.fingerprint}"]
    (tmp_path / "fixture.py").unlink()
    assert stale_allowlist_entries(tmp_path, allowed) == [f"fixture.py: {first.fingerprint}"]


# --- the detector itself ----------------------------------------------------------------------

# Built at runtime ({AT}) so this tracked file does not itself hold the samples it tests.
AT = "@"
REAL_LOOKING = [
    f"postgresql://cesar:Tr0ub4dor3{AT}db:5432/cesar",
    f"DATABASE_URL=postgres://app:s3cr3t-Pa55{AT}10.0.0.5/app",
    f"redis://:hunter2hunter2{AT}redis:6379/0",
    f"amqp://guest:guest{AT}rabbitmq:5672/",
    f"https://admin:changeme123{AT}grafana.example.com",
    f"postgresql://user:password1{AT}localhost/db",
    f"url = 'mongodb+srv://root:9f8a7b6c5d4e{AT}cluster0.mongodb.net/x'",
    f"postgresql://root:${{PASSWORD}}x{AT}db/x",
    f"postgresql://cesar:abc{AT}{AT}db/x",
]

PLACEHOLDERS = [
    "postgresql://user:password@localhost:5432/cesar",
    "postgresql://cesar:changeme@db/cesar",
    "postgresql://${COCKROACH_USER:-cesar}:${COCKROACH_PASSWORD:?set it}@cockroach:26257/cesar",
    "postgresql://$PGUSER:$PGPASSWORD@db/x",
    "postgresql://<user>:<password>@<host>:26257/cesar",
    "postgresql://cesar:***@db/cesar",
    'f"postgresql://{user}:{password}@{host}/{database}"',
    "redis://:secret@localhost:6379/0",
    "postgresql://root@cockroach:26257/cesar?sslmode=disable",
    "http://[::1]:8080/health",
    "see https://example.com/a:b@c",
    "git@github.com:org/repo.git",
]


@pytest.mark.parametrize("sample", REAL_LOOKING)
def test_detector_flags_real_looking_passwords(sample: str) -> None:
    findings = find_credential_urls(sample)
    assert findings, f"not flagged: {sample}"
    assert "<hidden>" in findings[0].url, "the finding must not repeat the password"


@pytest.mark.parametrize("sample", PLACEHOLDERS)
def test_detector_accepts_obvious_placeholders(sample: str) -> None:
    assert find_credential_urls(sample) == []


def test_detector_reports_file_and_line() -> None:
    text = f"a\nb\nx = 'postgresql://u:Zq8vLw2p{AT}h/d'\n"
    (finding,) = find_credential_urls(text, "conf.py")
    assert (finding.path, finding.line) == ("conf.py", 3)
    assert "Zq8vLw2p" not in str(finding)
