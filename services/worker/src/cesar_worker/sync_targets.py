"""Sync targets: the databases ``sync.supabase`` may write to, named by the operator.

A job names a target; it never gives a URL (a caller-chosen URL let any write key point the
worker at any host). ``SUPABASE_DB_URL`` is the target named ``default``; ``SUPABASE_TARGETS``
adds more, as a JSON object ``{"name": "postgresql://..."}`` or as ``name=URL`` pairs separated
by whitespace (both also from ``SUPABASE_TARGETS_FILE`` / ``SUPABASE_DB_URL_FILE``). Names are
``[a-z0-9][a-z0-9_-]*``, at most 63 characters.

In ``production`` a target must require TLS: its URL's ``sslmode`` (the last one, as the
driver reads it) is ``require``, ``verify-ca`` or ``verify-full``, unless
``ALLOW_INSECURE_SYNC_TARGETS=true``. What is shown about a target (errors, ``sync_status``,
logs) is its name and host, never its URL.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cesar_core.errors import ConfigurationError
from pydantic import SecretStr

from cesar_worker.config import WorkerConfig

__all__ = [
    "DEFAULT_TARGET",
    "InsecureTarget",
    "SyncTarget",
    "UnknownTarget",
    "configured_targets",
    "resolve_target",
    "sslmode",
]

DEFAULT_TARGET = "default"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SCHEMES = ("postgresql", "postgres", "cockroachdb", "cockroach")
_TLS_SSLMODES = {"require", "verify-ca", "verify-full"}


class UnknownTarget(ConfigurationError):
    """The job named a target the operator did not configure."""


class InsecureTarget(ConfigurationError):
    """A target without TLS in production."""


@dataclass(frozen=True)
class SyncTarget:
    name: str
    url: SecretStr

    @property
    def host(self) -> str:
        """``host:port`` (or ``host``): all that is ever shown of the URL."""
        try:
            parts = urlsplit(self.url.get_secret_value())
            host = parts.hostname or "localhost"
            port = parts.port
        except ValueError:
            return "?"
        return f"{host}:{port}" if port else host

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host})"

    @property
    def system_name(self) -> str:
        """The row in ``sync_status``: ``supabase`` for the default target (as before)."""
        return "supabase" if self.name == DEFAULT_TARGET else f"supabase:{self.name}"

    def scrub(self, text: str) -> str:
        """``text`` with the URL and its password removed (driver messages may echo them)."""
        url = self.url.get_secret_value()
        text = text.replace(url, self.label)
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        return text.replace(password, "***") if password else text


def sslmode(url: str) -> str | None:
    """The ``sslmode`` the driver uses: asyncpg keeps the last of repeated parameters."""
    try:
        values = parse_qs(urlsplit(url).query, keep_blank_values=True).get("sslmode")
    except ValueError:
        return None
    return values[-1] if values else None


def _check_url(name: str, url: str) -> None:
    """Refuse what asyncpg cannot use, naming the target but never echoing the URL."""
    if not _NAME.match(name):
        raise ConfigurationError(
            f"sync target name {name[:70]!r} is invalid: use [a-z0-9][a-z0-9_-]*, "
            "at most 63 characters"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise ConfigurationError(f"sync target {name}: the URL is malformed") from exc
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"sync target {name}: the URL must start with postgresql:// (key=value strings "
            "are not supported)"
        )


def _parse_targets(text: str) -> dict[str, str]:
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"SUPABASE_TARGETS is not valid JSON (line {exc.lineno}, column {exc.colno})"
            ) from exc
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise ConfigurationError("SUPABASE_TARGETS must map target names to URL strings")
        return dict(raw)
    pairs: dict[str, str] = {}
    for number, item in enumerate(text.split(), start=1):
        name, sep, url = item.partition("=")
        if not sep or not url:
            raise ConfigurationError(
                f"SUPABASE_TARGETS item {number} is not name=URL (or give a JSON object)"
            )
        if name in pairs:
            raise ConfigurationError(f"SUPABASE_TARGETS names {name[:70]!r} twice")
        pairs[name] = url
    return pairs


def configured_targets(config: WorkerConfig) -> dict[str, SyncTarget]:
    """Every target the operator configured; ConfigurationError (naming no URL) when invalid."""
    urls: dict[str, str] = {}
    if config.supabase_db_url is not None and config.supabase_db_url.get_secret_value().strip():
        urls[DEFAULT_TARGET] = config.supabase_db_url.get_secret_value().strip()
    if config.supabase_targets is not None:
        for name, url in _parse_targets(config.supabase_targets.get_secret_value()).items():
            if name == DEFAULT_TARGET:
                raise ConfigurationError(
                    "SUPABASE_TARGETS may not define 'default': that is SUPABASE_DB_URL"
                )
            urls[name] = url
    for name, url in urls.items():
        _check_url(name, url)
    return {name: SyncTarget(name, SecretStr(url)) for name, url in urls.items()}


def resolve_target(config: WorkerConfig, name: str | None) -> SyncTarget:
    """The target a job named (``None``: the default), checked for TLS in production."""
    wanted = name or DEFAULT_TARGET
    targets = configured_targets(config)
    target = targets.get(wanted)
    if target is None:
        known = ", ".join(sorted(targets)) or "none"
        if wanted == DEFAULT_TARGET:
            raise UnknownTarget(
                f"no default sync target: set SUPABASE_DB_URL (configured targets: {known})"
            )
        raise UnknownTarget(f"unknown sync target {wanted!r} (configured targets: {known})")
    if config.environment == "production" and not config.allow_insecure_sync_targets:
        mode = sslmode(target.url.get_secret_value())
        if mode not in _TLS_SSLMODES:
            raise InsecureTarget(
                f"sync target {target.label} does not require TLS (sslmode={mode or 'unset'}); "
                "add sslmode=require (or verify-full) to its URL, or set "
                "ALLOW_INSECURE_SYNC_TARGETS=true"
            )
    return target
