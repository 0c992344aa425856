"""Hiding connection secrets in text, and naming a connection target without them.

Two uses: :func:`redact_text` runs on every log line (so it must stay linear in the length of
hostile text: a client's model name ends up in a log line), and :func:`describe_target` is
what anything shown to a caller (health, readiness, errors, ``sync_status``) says about a
database or Redis URL: ``host:port/db``, never a user, a password or query parameters.

Why the patterns are linear (Python's ``re`` backtracks, so an unbounded quantifier that can
fail late makes a pattern quadratic):

- URL userinfo: a match can only start at ``://`` (the scheme does not matter for hiding a
  password); the user part and the password stop at ``/``, which every later ``://``
  contains, so each ``://`` costs one scan up to the next ``/``. A password with a raw ``/``
  is not a valid URL for the drivers either (it must be percent-encoded).
- ``password=value`` (query strings, libpq key=value strings, ``DB_PASSWORD=...``, so no
  word boundary is required before the key): once the key matched, the
  value part always matches (a quoted value's closing quote is optional), so no scan is
  repeated from a later start.
- Every repeat is possessive (``*+``, ``++``, ``{m,n}+``): each class excludes the character
  that must follow it, so giving characters back could never help; possessive repeats make
  the engine not try.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

__all__ = ["describe_target", "redact_text", "redact_url"]

_URL_PASSWORD = re.compile(r"(?P<head>://[^:/?#@\s]{0,256}+):[^/@\s]++@")
_KEY_PASSWORD = re.compile(
    r"(?P<key>(?:password|passwd|pwd)\s*+=\s*+)(?:'[^']*+'?|[^\s&'\"]++)",
    re.IGNORECASE,
)
_KV_PAIR = re.compile(r"(?<!\w)(\w++)\s*+=\s*+('[^']*+'?|\S*+)")
_UNKNOWN_TARGET = "(unrecognised connection target)"


def redact_text(text: str) -> str:
    """``text`` with URL passwords and ``password=...`` values replaced by ``***``."""
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    if "=" in text:
        text = _KEY_PASSWORD.sub(r"\g<key>***", text)
    return text


def redact_url(url: str) -> str:
    """The URL (or key=value connection string) with every password replaced: the userinfo
    password and ``password=`` parameters. Safe for operator logs; what callers see should
    come from :func:`describe_target` instead."""
    return redact_text(url)


def describe_target(url: str) -> str:
    """``host:port/db`` of a database or Redis URL or of a libpq ``key=value`` string: what
    may be shown about a connection target. Nothing else of ``url`` is kept."""
    text = url.strip()
    if "://" in text:
        return _describe_url(text)
    if "=" in text:
        return _describe_pairs(text)
    return _UNKNOWN_TARGET


def _join(host: str, port: str, database: str) -> str:
    where = f"{host}:{port}" if port else host
    return f"{where}/{database}" if database else where


def _describe_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return _UNKNOWN_TARGET
    hosts = parts.netloc.rpartition("@")[2]
    database = parts.path.lstrip("/")
    if not hosts:  # postgresql:///db?host=/run/postgresql&port=5433 (a socket directory)
        query = parse_qs(parts.query)
        host = query.get("host", ["localhost"])[-1]
        port = query.get("port", [""])[-1]
        return _join(host, port, database)
    return f"{hosts}/{database}" if database else hosts


def _describe_pairs(text: str) -> str:
    pairs = {key.lower(): value.strip("'") for key, value in _KV_PAIR.findall(text)}
    if not pairs:
        return _UNKNOWN_TARGET
    return _join(pairs.get("host", "localhost"), pairs.get("port", ""), pairs.get("dbname", ""))
