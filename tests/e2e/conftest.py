"""The whole stack as real processes: private PostgreSQL and Redis (so the fault tests can stop
them), the migrator, the fake Ollama upstream, the proxy, the API, the worker and the dashboard.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import (
    VENV_BIN,
    PrivatePostgres,
    PrivateRedis,
    Service,
    free_port,
    http_ok,
    wait_until,
)

FAKE_MODEL = "llama3.2:1b"


@dataclass
class Stack:
    pg: PrivatePostgres
    redis: PrivateRedis
    env: dict[str, str]
    services: dict[str, Service]
    api_url: str
    proxy_url: str
    dashboard_url: str
    api_key: str
    database_url: str
    log_dir: Path

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
        )

    def start_worker(self, name: str = "worker") -> Service:
        service = Service(
            name,
            [str(VENV_BIN / "cesar-worker")],
            {**self.env, "WORKER_ID": name, "WORKER_METRICS_PORT": "0"},
            self.log_dir,
        ).start()
        self.services[name] = service
        return service

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{s.tail(25)}" for n, s in self.services.items())


def _run(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    pg = PrivatePostgres().init()
    redis = PrivateRedis().start()
    log_dir = Path(tempfile.mkdtemp(prefix="cesar-e2e-logs-"))
    services: dict[str, Service] = {}
    try:
        database_url = pg.url.rsplit("/", 1)[0] + "/cesar"
        _run(["psql", pg.url, "-qc", "CREATE DATABASE cesar"], dict(os.environ))
        ports = {n: free_port() for n in ("api", "proxy", "fake", "dashboard")}
        api_url = f"http://127.0.0.1:{ports['api']}"
        proxy_url = f"http://127.0.0.1:{ports['proxy']}"
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("COCKROACH_DB_URL",)},
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "ENVIRONMENT": "development",
            "LOG_JSON": "true",
            "API_URL": api_url,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(ports["api"]),
            "OLLAMA_URL": proxy_url,  # the worker talks to the proxy, the proxy to the fake
            "OLLAMA_PROXY_URL": proxy_url,
            "PROXY_HOST": "127.0.0.1",
            "PROXY_PORT": str(ports["proxy"]),
            "DASHBOARD_PORT": str(ports["dashboard"]),
            "DASHBOARD_ADDRESS": "127.0.0.1",
            "DASHBOARD_URL": f"http://127.0.0.1:{ports['dashboard']}",
            "JOB_QUEUE_POLL_INTERVAL": "0.5",
            "JOB_QUEUE_STALL_SECONDS": "3",
            "JOB_QUEUE_HEARTBEAT_SECONDS": "0.5",
            "JOB_QUEUE_LOST_GRACE_SECONDS": "2",
            "JOB_QUEUE_BACKOFF_MINUTES": "0.01",
            "WORKER_METRICS_PORT": "0",
            # no scheduled memory/reputation jobs: tests count the rows of job_queue
            "MEMORY_CONSOLIDATE_SECONDS": "0",
            "REPUTATION_COMPUTE_SECONDS": "0",
            "WORKER_VIEWS_REFRESH_SECONDS": "2",
            "REFRESH_SECONDS": "0",
            "DB_CONNECT_MAX_DELAY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        print(_run([str(VENV_BIN / "cesar-migrate"), "apply", "--wait", "30"], env))
        api_key = _run([str(VENV_BIN / "cesar-api-keys"), "create", "e2e"], env).split()[0]
        env["API_KEY"] = api_key
        upstream = f"http://127.0.0.1:{ports['fake']}"
        plan = [
            (
                "fake-ollama",
                [
                    sys.executable,
                    "-m",
                    "cesar_ollama_proxy.testing.fake_ollama",
                    "--port",
                    str(ports["fake"]),
                    "--models",
                    f"{FAKE_MODEL},nomic-embed-text:latest",
                ],
                env,
                http_ok(f"{upstream}/api/version"),
            ),
            (
                "ollama-proxy",
                [str(VENV_BIN / "cesar-ollama-proxy")],
                {**env, "OLLAMA_URL": upstream},
                http_ok(f"{proxy_url}/readyz"),
            ),
            ("api", [str(VENV_BIN / "cesar-api")], env, http_ok(f"{api_url}/readyz")),
            (
                "dashboard",
                [str(VENV_BIN / "cesar-dashboard")],
                env,
                http_ok(f"{env['DASHBOARD_URL']}/_stcore/health"),
            ),
        ]
        for name, argv, service_env, ready in plan:
            services[name] = Service(name, argv, service_env, log_dir, ready).start(timeout=90)
        built = Stack(
            pg,
            redis,
            env,
            services,
            api_url,
            proxy_url,
            env["DASHBOARD_URL"],
            api_key,
            database_url,
            log_dir,
        )
        built.start_worker()
        wait_until(lambda: _worker_seen(built), 30, "worker heartbeat")
        yield built
    finally:
        for service in reversed(list(services.values())):
            service.stop()
        redis.stop()
        pg.destroy()


def _worker_seen(stack: Stack) -> bool:
    with stack.api() as api:
        return api.get("/health").json()["components"]["worker"]["status"] == "healthy"
