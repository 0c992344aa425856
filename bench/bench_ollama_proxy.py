"""Ollama proxy overhead: a small non-streamed /api/generate through the proxy (cache miss,
cache hit) against the same fake Ollama called directly, side by side in one run.

Three processes on loopback: the fake Ollama, the proxy (``python -m cesar_ollama_proxy``,
real Redis, no database, limits high enough not to refuse), and this client. Latency is
measured one request at a time (p50/p99); throughput with ``CONCURRENCY`` requests in
flight. Misses use a fresh prompt per request (temperature 0, so each is looked up, sent
upstream and stored); hits repeat one prompt.
Goal (issue 6): a miss adds at most 2 ms of p50 over direct; a hit is faster than direct.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cesar_ollama_proxy.testing import free_port

SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", 1500))
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT", 3000))
CONCURRENCY = 8
WARMUP = 200
MODEL = "llama3.2:1b"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=env, stderr=subprocess.DEVNULL)


def _wait(url: str, path: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(url: str, body: Callable[[int], dict[str, Any]]) -> dict[str, float]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        for i in range(WARMUP):
            (await http.post("/api/generate", json=body(-1 - i))).raise_for_status()
        latencies: list[float] = []
        for i in range(SEQUENTIAL):
            started = time.perf_counter()
            resp = await http.post("/api/generate", json=body(i))
            latencies.append((time.perf_counter() - started) * 1000)
            resp.raise_for_status()
        counter = iter(range(SEQUENTIAL, SEQUENTIAL + CONCURRENT))

        async def worker() -> None:
            for i in counter:
                (await http.post("/api/generate", json=body(i))).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return {
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(_percentile(latencies, 0.99), 3),
        "mean_ms": round(statistics.fmean(latencies), 3),
        "requests_per_s": round(CONCURRENT / elapsed, 1),
    }


def main(results_dir: Path) -> None:
    run = uuid.uuid4().hex[:8]
    fake_port, proxy_port = free_port(), free_port()
    fake_url, proxy_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{proxy_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COCKROACH_DB_URL")}
    prefix = f"cesar-bench:{run}:"
    fake = _spawn(["-m", "cesar_ollama_proxy.testing.fake_ollama", "--port", str(fake_port)], env)
    proxy = _spawn(
        ["-m", "cesar_ollama_proxy"],
        {
            **env,
            "OLLAMA_URL": fake_url,
            "REDIS_URL": REDIS_URL,
            "PROXY_HOST": "127.0.0.1",
            "PROXY_PORT": str(proxy_port),
            "PROXY_REDIS_PREFIX": prefix,
            "PROXY_RATE_LIMIT_CLIENT": os.environ.get("BENCH_LIMIT", "100000000/minute"),
            "PROXY_RATE_LIMIT_MODEL": os.environ.get("BENCH_LIMIT", "100000000/minute"),
            "PROXY_RATE_LIMIT_STRATEGY": os.environ.get("BENCH_STRATEGY", "moving-window"),
            "PROXY_MAX_CONCURRENT_UPSTREAM": str(CONCURRENCY),
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        _wait(fake_url, "/api/version")
        _wait(proxy_url, "/readyz")

        def fresh(i: int) -> dict[str, Any]:
            return {"model": MODEL, "prompt": f"{run} bench {i}", "stream": False,
                    "options": {"temperature": 0}}  # fmt: skip

        def same(_: int) -> dict[str, Any]:
            return {"model": MODEL, "prompt": "bench hit", "stream": False,
                    "options": {"temperature": 0}}  # fmt: skip

        results = {
            "direct": asyncio.run(_measure(fake_url, fresh)),
            "proxy_miss": asyncio.run(_measure(proxy_url, fresh)),
            "proxy_hit": asyncio.run(_measure(proxy_url, same)),
        }
    finally:
        for proc in (proxy, fake):
            proc.terminate()
        for proc in (proxy, fake):
            proc.wait(timeout=30)
        _cleanup(prefix)

    direct, miss, hit = results["direct"], results["proxy_miss"], results["proxy_hit"]
    summary = {
        "miss_added_p50_ms": round(miss["p50_ms"] - direct["p50_ms"], 3),
        "hit_vs_direct_p50_ms": round(hit["p50_ms"] - direct["p50_ms"], 3),
        "goal_miss_added_p50_le_2ms": miss["p50_ms"] - direct["p50_ms"] <= 2.0,
        "goal_hit_faster_than_direct": hit["p50_ms"] < direct["p50_ms"],
    }
    payload = {
        "benchmark": "ollama_proxy",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "setup": {
            "sequential_requests": SEQUENTIAL,
            "concurrent_requests": CONCURRENT,
            "concurrency": CONCURRENCY,
            "warmup": WARMUP,
            "request": "POST /api/generate, stream false, temperature 0, 5 tokens",
        },
        "results": results,
        "summary": summary,
    }
    (results_dir / "ollama_proxy.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Ollama proxy: overhead against the fake Ollama called directly",
        "",
        f"{payload['when']}, Python {platform.python_version()}, {os.cpu_count()} CPUs. "
        f"Latency: {SEQUENTIAL} requests one at a time; throughput: {CONCURRENT} requests "
        f"with {CONCURRENCY} in flight. Small non-streamed `/api/generate` (5 tokens).",
        "",
        "| path | p50 ms | p99 ms | mean ms | requests/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['p50_ms']} | {row['p99_ms']} | {row['mean_ms']} "
            f"| {row['requests_per_s']} |"
        )
    lines += [
        "",
        f"- cache miss adds **{summary['miss_added_p50_ms']} ms** p50 over direct "
        f"(goal <= 2 ms: {'met' if summary['goal_miss_added_p50_le_2ms'] else 'NOT met'})",
        f"- cache hit p50 is **{summary['hit_vs_direct_p50_ms']} ms** relative to direct "
        f"(goal: faster: {'met' if summary['goal_hit_faster_than_direct'] else 'NOT met'})",
        "",
    ]
    (results_dir / "ollama_proxy.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _cleanup(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
