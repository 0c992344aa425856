"""Sync target configuration: parsing, names, TLS in production, what is shown of a URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cesar_core.errors import ConfigurationError
from cesar_worker.config import WorkerConfig
from cesar_worker.sync_targets import (
    InsecureTarget,
    UnknownTarget,
    configured_targets,
    resolve_target,
    sslmode,
)
from pydantic import SecretStr

SECRET = "s3" + "cret"  # built at runtime: no credential-looking literal in the repo


def cfg(**update: object) -> WorkerConfig:
    return WorkerConfig.model_construct().model_copy(update=update)


def test_targets_as_pairs_or_json() -> None:
    pairs = cfg(
        supabase_db_url=SecretStr("postgresql://sync@db.example/cesar"),
        supabase_targets=SecretStr(
            "archive=postgresql://a@archive.example:6543/x\n  eu-1=postgres://b@eu.example/y"
        ),
    )
    assert {n: t.host for n, t in configured_targets(pairs).items()} == {
        "default": "db.example",
        "archive": "archive.example:6543",
        "eu-1": "eu.example",
    }
    as_json = cfg(supabase_targets=SecretStr(json.dumps({"archive": "postgresql://h/x"})))
    assert list(configured_targets(as_json)) == ["archive"]
    assert configured_targets(cfg()) == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Archive=postgresql://h/x", "name 'Archive' is invalid"),
        ("default=postgresql://h/x", "may not define 'default'"),
        ("archive", "item 1 is not name=URL"),
        ("a=postgresql://h/x a=postgresql://h/y", "names 'a' twice"),
        (f"a=host=h password={SECRET}", "must start with postgresql://"),
        ('{"a": 1}', "must map target names to URL strings"),
        ("{not json", "not valid JSON"),
        (f"a=postgresql://u:{SECRET}@h:99999/x", "URL is malformed"),
    ],
)
def test_bad_target_configuration_is_named_without_the_url(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as caught:
        configured_targets(cfg(supabase_targets=SecretStr(value)))
    assert SECRET not in str(caught.value)


def test_targets_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "targets"
    path.write_text(f"archive=postgresql://sync:{SECRET}@archive.example/cesar?sslmode=require\n")
    monkeypatch.setenv("SUPABASE_TARGETS_FILE", str(path))
    config = WorkerConfig()
    target = resolve_target(config, "archive")
    assert target.label == "archive (archive.example)"
    assert target.system_name == "supabase:archive"
    message = (
        f"could not connect to postgresql://sync:{SECRET}@archive.example/cesar?sslmode=require"
    )
    assert SECRET not in target.scrub(message)


def test_unknown_names_are_refused() -> None:
    config = cfg(supabase_targets=SecretStr("archive=postgresql://h/x"))
    with pytest.raises(UnknownTarget, match=r"unknown sync target 'other' .*archive"):
        resolve_target(config, "other")
    with pytest.raises(UnknownTarget, match="set SUPABASE_DB_URL"):
        resolve_target(config, None)


def test_sslmode_is_read_like_the_driver() -> None:
    assert sslmode("postgresql://h/x?sslmode=require&sslmode=disable") == "disable"
    assert sslmode("postgresql://h/x?sslmode=disable&sslmode=verify-full") == "verify-full"
    assert sslmode("postgresql://h/x") is None


def test_production_needs_tls_unless_allowed() -> None:
    for url, ok in [
        ("postgresql://h/x?sslmode=verify-full", True),
        ("postgresql://h/x?sslmode=require&sslmode=prefer", False),
        ("postgresql://h/x", False),
    ]:
        config = cfg(environment="production", supabase_db_url=SecretStr(url))
        if ok:
            assert resolve_target(config, None).name == "default"
        else:
            with pytest.raises(InsecureTarget, match="does not require TLS"):
                resolve_target(config, None)
            allowed = config.model_copy(update={"allow_insecure_sync_targets": True})
            assert resolve_target(allowed, None).name == "default"
    development = cfg(supabase_db_url=SecretStr("postgresql://h/x"))
    assert resolve_target(development, "default").host == "h"
