"""The shell snippets inside the compose files, run for real with stand-ins for the tools of
their images (redis-server's entrypoint, redis-cli, ollama, cockroach) on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SH = shutil.which("sh")
pytestmark = pytest.mark.skipif(SH is None, reason="no POSIX shell")


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run(script: str, bin_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(bin_dir)}
    return subprocess.run(
        [str(SH), "-c", script], env={**base, **env}, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


# --- redis: a password is required, from the environment or a Docker secret file -------------


@pytest.fixture
def redis_start(base_model: Any, bin_dir: Path) -> str:
    stub(bin_dir, "docker-entrypoint.sh", 'echo "ARGS: $*"')
    service = base_model.services["redis"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    script = service["command"][0]
    assert isinstance(script, str)
    return script


def test_redis_starts_with_the_password_from_the_environment(
    redis_start: str, bin_dir: Path
) -> None:
    result = run(redis_start, bin_dir, {"REDIS_PASSWORD": "s3cret-Value_1"})
    assert result.returncode == 0, result.stderr
    assert "--requirepass s3cret-Value_1" in result.stdout
    assert "--maxmemory-policy noeviction" in result.stdout


def test_redis_reads_the_password_from_a_secret_file(
    redis_start: str, bin_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("from-a-file\n")
    result = run(redis_start, bin_dir, {"REDIS_PASSWORD_FILE": str(secret)})
    assert result.returncode == 0, result.stderr
    assert "--requirepass from-a-file" in result.stdout


@pytest.mark.parametrize("password", ["", "p@ss", "a/b", "x#y", "q?z", "sp ace", "per%cent"])
def test_redis_refuses_a_missing_or_url_breaking_password(
    redis_start: str, bin_dir: Path, password: str
) -> None:
    result = run(redis_start, bin_dir, {"REDIS_PASSWORD": password})
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr and "ARGS" not in result.stdout


def test_redis_healthcheck_authenticates(base_model: Any, bin_dir: Path) -> None:
    # The stand-in answers PONG only to a client that sent the right password.
    stub(bin_dir, "redis-cli", '[ "$REDISCLI_AUTH" = "right-one" ] && echo PONG || echo NOAUTH')
    test = base_model.services["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert run(test[1], bin_dir, {"REDIS_PASSWORD": "right-one"}).returncode == 0
    assert run(test[1], bin_dir, {"REDIS_PASSWORD": "wrong-one"}).returncode != 0


def test_redis_is_not_published_unless_asked_for(tools: Any) -> None:
    assert "ports" not in tools.Model((tools.base_file,)).services["redis"]
    published = tools.Model((tools.base_file, "compose.redis-port.yaml")).services["redis"]
    assert published["ports"] == ["127.0.0.1:6379:6379"]


# --- ollama-init: a model already present is not pulled again (restarts work offline) --------


def test_ollama_init_pulls_only_missing_models(
    base_model: Any, bin_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "pulls"
    stub(
        bin_dir,
        "ollama",
        f'case "$1" in show) [ "$2" = "present:1b" ] ;; pull) echo "$2" >> {log} ;; *) exit 9 ;; esac',
    )
    init = base_model.services["ollama-init"]
    assert init["entrypoint"] == ["/bin/sh", "-c"]
    result = run(init["command"][0], bin_dir, {"CESAR_PULL_MODELS": "present:1b,missing:2b"})
    assert result.returncode == 0, result.stderr
    assert log.read_text().split() == ["missing:2b"]
    assert "present:1b is present" in result.stdout


# --- secure mode: the password goes into a URL, so characters that would break it are refused -


SECURE_USER = Path(__file__).resolve().parents[2] / "deploy" / "cockroach" / "secure-user.sh"


@pytest.mark.parametrize("bad", ["@", "/", "#", "?", ":", "%", "'"])
def test_secure_mode_refuses_a_password_that_breaks_the_url(bin_dir: Path, bad: str) -> None:
    stub(bin_dir, "cockroach", "echo CALLED; cat >/dev/null")
    password = "a" * 10 + bad + "b" * 10
    result = run(
        f"bash {SECURE_USER}", bin_dir, {"COCKROACH_USER": "cesar", "COCKROACH_PASSWORD": password}
    )
    assert result.returncode == 2, result.stdout
    assert "COCKROACH_PASSWORD" in result.stderr and "CALLED" not in result.stdout


def test_secure_mode_accepts_a_hex_password(bin_dir: Path) -> None:
    stub(bin_dir, "cockroach", "echo CALLED; cat >/dev/null")
    result = run(
        f"bash {SECURE_USER}",
        bin_dir,
        {"COCKROACH_USER": "cesar", "COCKROACH_PASSWORD": "ab12" * 12},
    )
    assert result.returncode == 0, result.stderr
    assert "CALLED" in result.stdout
