"""Memory and CPU of every service: idle and loaded RSS, migrator peak, CPU per request or job.

One fresh database, migrated by ``cesar-migrate apply`` (its peak RSS comes from ``wait4``).
Then the API, a worker, the dashboard and the Ollama proxy (in front of the fake Ollama) run
side by side at their defaults, as one process each; after they have settled for
``SETTLE`` seconds their RSS is the idle figure. Each is then loaded in turn:

- api: ``wrk`` on the jobs listing (50 rows, 1 thread, 32 connections) for 5 s;
- worker: 2,000 ``maintenance.noop`` jobs (``enqueue_many``) until all have succeeded;
- dashboard: three headless Chromium sessions (playwright) render the overview page;
- proxy: 2,000 non-streamed ``/api/generate`` requests (half misses, half hits), 8 in flight.

Loaded RSS is the RSS after the load and the peak (``VmHWM``); CPU per request or job is the
process's CPU time (/proc) over the load divided by the requests or jobs. Goals (issue 15):
idle RSS api / worker / dashboard / proxy floors 150 / 120 / 200 / 120 MB, goals
100 / 80 / 150 / 80 MB.

Run: ``uv run python -m bench resources`` (results in bench/results/resources.json and .md).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from cesar_core.db import Database, connect
from cesar_core.jobs import JobQueue, load_registry
from cesar_core.redis import create_redis
from cesar_core.testing import admin_url, database_named, drop_database
from cesar_worker.config import WorkerConfig

from bench.common import (
    cpu_seconds,
    free_port,
    goal,
    goal_line,
    loadavg,
    peak_rss_mb,
    rss_mb,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SETTLE = float(os.environ.get("BENCH_RESOURCES_SETTLE", "10"))
WORKER_JOBS = 2000
PROXY_REQUESTS = 2000
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# (service, floor MB, goal MB) for the idle RSS
IDLE_GOALS = (("api", 150, 100), ("worker", 120, 80), ("dashboard", 200, 150), ("proxy", 120, 80))


def _wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def _database() -> tuple[str, str]:
    name = f"cesar_bench_res_{uuid.uuid4().hex[:8]}"
    admin = await connect(admin_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, database_named(admin_url(), name)


def _migrate(env: dict[str, str]) -> dict[str, Any]:
    """``cesar-migrate apply`` on the fresh database; its peak RSS from the kernel."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "cesar-migrate"), "apply"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise RuntimeError(f"cesar-migrate apply failed: {proc.stderr.read().decode()[-500:]}")
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _load_api(url: str) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed"}
    out = subprocess.run(
        ["wrk", "-t1", "-c32", "-d5s", f"{url}/api/v1/jobs?limit=50"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(out.split(" requests in ")[0].split()[-1])
    return {"requests": requests}


async def _load_worker(url: str, queue_name: str) -> dict[str, Any]:
    config = WorkerConfig(database_url=None).model_copy(update={"job_queue_name": queue_name})
    db = await Database.open(url, min_size=1, max_size=4)
    redis = create_redis(REDIS_URL)
    try:
        queue = JobQueue(db, redis, config, load_registry())
        for _ in range(WORKER_JOBS // 500):
            await queue.enqueue_many("maintenance.noop", [{} for _ in range(500)])
        deadline = time.monotonic() + 300
        while True:
            async with db.connection() as conn:
                done = await conn.fetchval(
                    "SELECT COUNT(*) FROM job_queue WHERE status = 'succeeded' "
                    "AND job_type = 'maintenance.noop'"
                )
            if done >= WORKER_JOBS:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {WORKER_JOBS} jobs succeeded")
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()
        await db.close()
    return {"jobs": WORKER_JOBS}


async def _load_dashboard(url: str) -> dict[str, Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return {"skipped": "chromium is not installed (scripts/install-system-deps.sh)"}
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            pages = [await browser.new_page() for _ in range(3)]
            for page in pages:
                await page.goto(url, wait_until="domcontentloaded")
            for page in pages:
                await page.get_by_text("Service health").first.wait_for(timeout=90_000)
            await asyncio.sleep(2)
        finally:
            await browser.close()
    return {"sessions": 3}


async def _load_proxy(url: str) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(i: int) -> None:
            prompt = f"{run} {i}" if i % 2 else "bench resources hit"
            body = {"model": "llama3.2:1b", "prompt": prompt, "stream": False}
            async with sem:
                (await client.post("/api/generate", json=body)).raise_for_status()

        await asyncio.gather(*(one(i) for i in range(PROXY_REQUESTS)))
    return {"requests": PROXY_REQUESTS}


def _measure(pid: int, load: Any) -> dict[str, Any]:
    before = cpu_seconds(pid)
    started = time.perf_counter()
    info: dict[str, Any] = load()
    elapsed = time.perf_counter() - started
    after = cpu_seconds(pid)
    count = info.get("requests") or info.get("jobs")
    cpu = (after - before) if before is not None and after is not None else None
    return {
        **info,
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2) if cpu is not None else None,
        "cpu_ms_per_unit": round(cpu * 1000 / count, 3) if cpu is not None and count else None,
        "rss_mb_after": rss_mb(pid),
        "rss_mb_peak": peak_rss_mb(pid),
    }


def _run() -> dict[str, Any]:
    name, url = asyncio.run(_database())
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    ports = {n: free_port() for n in ("api", "dashboard", "proxy", "fake")}
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("COCKROACH_DB_URL", "API_KEY")},
        "DATABASE_URL": url,
        "DASHBOARD_DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(ports["api"]),
        "API_URL": f"http://127.0.0.1:{ports['api']}",
        "RATE_LIMIT_PER_ADDRESS": "100000000/minute",
        "RATE_LIMIT_PREFIX": f"{prefix}rl",
        "EVENT_STREAM": f"{prefix}events",
        "JOB_QUEUE_NAME": f"{prefix}arq",
        "WORKER_ID": "bench-resources",
        "WORKER_METRICS_PORT": "0",
        "DASHBOARD_PORT": str(ports["dashboard"]),
        "DASHBOARD_ADDRESS": "127.0.0.1",
        "OLLAMA_PROXY_URL": f"http://127.0.0.1:{ports['proxy']}",
        "OLLAMA_URL": f"http://127.0.0.1:{ports['fake']}",
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(ports["proxy"]),
        "PROXY_REDIS_PREFIX": f"{prefix}proxy:",
        "PROXY_RATE_LIMIT_CLIENT": "100000000/minute",
        "PROXY_RATE_LIMIT_MODEL": "100000000/minute",
        "PROXY_RATE_LIMIT_ADDRESS": "100000000/minute",
        "PROXY_MAX_CONCURRENT_UPSTREAM": "8",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    result: dict[str, Any] = {"loadavg_before": loadavg()}
    try:
        result["migrator"] = _migrate(env)
        procs["fake"] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cesar_ollama_proxy.testing.fake_ollama",
                "--port",
                str(ports["fake"]),
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        procs["api"] = subprocess.Popen([str(BIN / "cesar-api")], env=env, cwd=ROOT)
        procs["worker"] = subprocess.Popen(
            [str(BIN / "cesar-worker")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs["dashboard"] = subprocess.Popen(
            [str(BIN / "cesar-dashboard")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs["proxy"] = subprocess.Popen(
            [str(BIN / "cesar-ollama-proxy")], env=env, stderr=subprocess.DEVNULL
        )
        _wait_http(f"{env['API_URL']}/livez")
        _wait_http(f"http://127.0.0.1:{ports['dashboard']}/_stcore/health")
        _wait_http(f"http://127.0.0.1:{ports['proxy']}/readyz")
        time.sleep(SETTLE)
        services = ("api", "worker", "dashboard", "proxy")
        idle = {s: rss_mb(procs[s].pid) for s in services}
        result["idle_rss_mb"] = idle
        loads: dict[str, Any] = {
            "api": lambda: _load_api(env["API_URL"]),
            "worker": lambda: asyncio.run(_load_worker(url, env["JOB_QUEUE_NAME"])),
            "dashboard": lambda: asyncio.run(
                _load_dashboard(f"http://127.0.0.1:{ports['dashboard']}")
            ),
            "proxy": lambda: asyncio.run(_load_proxy(f"http://127.0.0.1:{ports['proxy']}")),
        }
        result["loaded"] = {s: _measure(procs[s].pid, loads[s]) for s in services}
        result["loadavg_after"] = loadavg()
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis = create_redis(REDIS_URL)

        async def purge() -> None:
            keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
            for start in range(0, len(keys), 1000):
                await redis.unlink(*keys[start : start + 1000])
            await redis.aclose()

        asyncio.run(purge())
        asyncio.run(drop_database(name))
    result["goals"] = [
        goal(
            f"idle RSS {service}",
            result["idle_rss_mb"][service],
            floor=floor,
            target=target,
            higher_is_better=False,
            unit="MB",
        )
        for service, floor, target in IDLE_GOALS
    ]
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    return result


def _markdown(r: dict[str, Any]) -> str:
    unit = {"api": "request", "worker": "job", "dashboard": "session", "proxy": "request"}
    rows = []
    for service, info in r["loaded"].items():
        load = info.get("skipped") or ", ".join(
            f"{info[k]} {k}" for k in ("requests", "jobs", "sessions") if k in info
        )
        per = info["cpu_ms_per_unit"] if service != "dashboard" else None
        rows.append(
            f"| {service} | {r['idle_rss_mb'][service]} | {info['rss_mb_after']} "
            f"| {info['rss_mb_peak']} | {load} | {info['cpu_seconds']} "
            f"| {per if per is not None else '-'} {'' if per is None else 'per ' + unit[service]} |"
        )
    m = r["migrator"]
    return "\n".join(
        [
            "# Resources: RSS and CPU of every service",
            "",
            f"{r['machine']['cpus']} CPUs, Python {r['machine']['python']}; load average "
            f"{r['loadavg_before']} before, {r['loadavg_after']} after. Every service one "
            f"process at its defaults on one fresh database; idle = RSS after {SETTLE:g} s "
            "settled with all of them up; then each is loaded in turn (see bench_resources.py).",
            "",
            "## Goals",
            "",
            *[goal_line(g) for g in r["goals"]],
            "",
            "| service | idle RSS MB | after load MB | peak MB | load | CPU s | CPU ms per unit |",
            "|---|---:|---:|---:|---|---:|---|",
            *rows,
            "",
            "The dashboard's idle figure is Streamlit before any session: it runs the app "
            "script (and imports its libraries) for the first session, so its figure after "
            "load is what a dashboard in use holds.",
            "",
            f"Migrator (`cesar-migrate apply` on an empty database, every migration): peak RSS "
            f"**{m['peak_rss_mb']} MB**, {m['cpu_seconds']} s CPU, {m['seconds']} s.",
            "",
        ]
    )


def main(results_dir: Path) -> None:
    result = _run()
    (results_dir / "resources.json").write_text(json.dumps(result, indent=2) + "\n")
    text = _markdown(result)
    (results_dir / "resources.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(ROOT / "bench" / "results")
