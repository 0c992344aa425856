"""`make dev` and the scripts around it, run for real where they can be (honcho with a stand-in
Procfile, the CockroachDB test runner on a machine without a Docker engine)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def procfile() -> dict[str, str]:
    lines = (REPO / "Procfile.dev").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


# --- the Procfile: loopback, wired through the proxy, one process per service -----------------


def test_make_dev_runs_the_dev_script() -> None:
    recipe = subprocess.run(
        ["make", "-n", "--no-print-directory", "dev"], cwd=REPO, capture_output=True, text=True
    ).stdout
    assert "./scripts/dev.sh" in recipe
    assert "honcho -f Procfile.dev start" not in recipe, "plain honcho reads .env"
    script = (REPO / "scripts" / "dev.sh").read_text()
    assert "scripts/dev_honcho.py -f Procfile.dev" in script


def test_every_service_binds_to_the_dev_bind_address() -> None:
    processes = procfile()
    binds = {
        "api": "API_HOST",
        "worker": "WORKER_METRICS_HOST",
        "ollama-proxy": "PROXY_HOST",
        "dashboard": "DASHBOARD_ADDRESS",
    }
    for name, variable in binds.items():
        assert f"{variable}=$DEV_BIND_ADDRESS" in processes[name], name
    assert (
        "DEV_BIND_ADDRESS=${DEV_BIND_ADDRESS:-127.0.0.1}"
        in (REPO / "scripts" / "dev.sh").read_text()
    )


def test_worker_and_dashboard_go_through_the_local_proxy() -> None:
    processes = procfile()
    assert "OLLAMA_URL=$DEV_PROXY_URL" in processes["worker"]
    assert "OLLAMA_PROXY_URL=$DEV_PROXY_URL" in processes["worker"]
    assert "OLLAMA_PROXY_URL=$DEV_PROXY_URL" in processes["dashboard"]
    # Only the proxy talks to Ollama itself.
    assert "OLLAMA_URL=$DEV_OLLAMA_URL" in processes["ollama-proxy"]


def test_services_run_without_a_signal_forwarding_wrapper() -> None:
    for name, command in procfile().items():
        assert "uv run" not in command, f"{name}: uv forwards SIGTERM a second time"
        if name != "migrator":
            assert command.startswith("exec "), f"{name}: the shell stays between"


# --- honcho as make dev runs it ---------------------------------------------------------------


def dev_honcho(tmp_path: Path, lines: str, env: dict[str, str]) -> subprocess.Popen[str]:
    (tmp_path / "Procfile").write_text(lines)
    return subprocess.Popen(
        [PYTHON, str(REPO / "scripts" / "dev_honcho.py"), "-f", "Procfile", "--no-colour"],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # like a terminal's foreground job: Ctrl-C reaches the group
    )


def test_a_dotenv_file_does_not_beat_exported_variables(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REDIS_URL=redis://redis:6379/0\nAPI_KEY=changeme-api-key\n")
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0", "API_KEY": "exported"}
    proc = dev_honcho(tmp_path, 'show: echo "seen $REDIS_URL $API_KEY"\n', env)
    out, _ = proc.communicate(timeout=60)
    assert "seen redis://127.0.0.1:6379/0 exported" in out, out


def test_an_env_file_is_read_only_when_asked_for(tmp_path: Path) -> None:
    (tmp_path / "dev.env").write_text("ONLY_IN_FILE=yes\n")
    proc = dev_honcho(tmp_path, 'show: echo "file=$ONLY_IN_FILE"\n', {"DEV_ENV_FILE": "dev.env"})
    out, _ = proc.communicate(timeout=60)
    assert "file=yes" in out, out


SIGNAL_LOGGER = """
import signal, sys, time
log = open(sys.argv[1], "a")
def note(number, frame):
    log.write(signal.Signals(number).name + "\\n"); log.flush()
signal.signal(signal.SIGTERM, note)
signal.signal(signal.SIGINT, note)
print("ready", flush=True)
started = time.monotonic()
while time.monotonic() - started < float(sys.argv[2]):
    time.sleep(0.05)
log.write("finished\\n"); log.flush()
"""


@pytest.mark.slow
def test_ctrl_c_signals_the_worker_once_and_keeps_its_grace_period(tmp_path: Path) -> None:
    """The worker's command line as Procfile.dev runs it (exec, no `uv run` in between); the
    stand-in takes 8 s to shut down, longer than honcho's own 5 s before SIGKILL, and another
    service stops at once."""
    (tmp_path / "logger.py").write_text(SIGNAL_LOGGER)
    log = tmp_path / "signals"
    worker = procfile()["worker"]
    assert worker.startswith("exec env ") and ".venv/bin/cesar-worker" in worker
    lines = f"worker: exec {PYTHON} logger.py {log} 8\nother: exec sleep 600\n"
    proc = dev_honcho(tmp_path, lines, {"WORKER_SHUTDOWN_GRACE_SECONDS": "10"})
    assert proc.stdout is not None
    for line in proc.stdout:
        if "ready" in line:
            break
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
    proc.communicate(timeout=60)
    assert log.read_text().split() == ["SIGTERM", "finished"]


def test_kill_wait_follows_the_worker_grace_period() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import dev_honcho
    finally:
        sys.path.pop(0)
    assert dev_honcho.kill_wait({}) == 25
    assert dev_honcho.kill_wait({"WORKER_SHUTDOWN_GRACE_SECONDS": "3"}) == 8
    assert dev_honcho.honcho_argv([], {})[:2] == ["-e", os.devnull]


# --- make test-cockroach without a Docker engine ---------------------------------------------


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.mark.parametrize("docker", ["missing", "no-engine"])
def test_test_cockroach_says_in_one_line_that_docker_is_missing(
    tmp_path: Path, docker: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    if docker == "no-engine":
        stub(bin_dir, "docker", 'echo "Cannot connect to the Docker daemon" >&2; exit 1')
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "test-cockroach", "UV=true"],
        cwd=REPO,
        env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
        if docker == "no-engine"
        else {**os.environ, "PATH": str(bin_dir) + ":" + _path_without_docker()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("make test-cockroach")]
    assert len(lines) == 1 and "Docker" in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _path_without_docker() -> str:
    return ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "docker").exists())


# --- make up, make verify ---------------------------------------------------------------------


def test_make_up_builds_the_images() -> None:
    recipe = subprocess.run(
        ["make", "-n", "--no-print-directory", "up"], cwd=REPO, capture_output=True, text=True
    ).stdout
    assert re.search(r"docker compose up -d --wait --build", recipe), recipe


def test_make_up_creates_env_with_a_random_redis_password(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    for target in (first, second):
        result = subprocess.run(
            [str(REPO / "scripts" / "make-env.sh"), str(target)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
    passwords = [
        re.search(r"^REDIS_PASSWORD=([0-9a-f]{48})$", p.read_text(), re.M) for p in (first, second)
    ]
    assert all(passwords) and passwords[0] != passwords[1]  # type: ignore[union-attr]
    assert (first.stat().st_mode & 0o077) == 0, ".env holds secrets: owner only"


def test_verify_uses_the_compose_files_of_the_running_stack(tmp_path: Path) -> None:
    listing: list[dict[str, Any]] = [
        {"Name": "other", "Status": "running(1)", "ConfigFiles": "/x/compose.yaml"},
        {
            "Name": "cesar",
            "Status": "running(9)",
            "ConfigFiles": "/srv/cesar/compose.yaml,/srv/cesar/compose.secure.yaml",
        },
    ]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "docker", f"echo '{json.dumps(listing)}'")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("COMPOSE_FILE", None)
    script = str(REPO / "scripts" / "compose-files.sh")
    out = subprocess.run([script], env=env, capture_output=True, text=True).stdout.strip()
    assert out == "-f /srv/cesar/compose.yaml -f /srv/cesar/compose.secure.yaml"
    # Files chosen explicitly are left alone.
    for chosen in ({"COMPOSE_FILE": "compose.yaml"}, {"COMPOSE": "docker compose -f a.yaml"}):
        out = subprocess.run(
            [script], env={**env, **chosen}, capture_output=True, text=True
        ).stdout.strip()
        assert out == "", chosen
    recipe = subprocess.run(
        ["make", "-n", "--no-print-directory", "verify"], cwd=REPO, capture_output=True, text=True
    ).stdout
    assert "scripts/compose-files.sh" in recipe


def test_e2e_tests_skip_with_a_reason_without_postgresql_binaries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.e2e import processes

    monkeypatch.setattr(processes, "PG_BIN", None)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL server binaries"):
        processes.PrivatePostgres()
