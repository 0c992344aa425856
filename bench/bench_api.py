"""API throughput next to bare FastAPI peers, and WebSocket fan-out to 1,000 clients next to a
bare fan-out, all measured in the same run.

HTTP: ``/livez``, ``/health`` and ``GET /api/v1/jobs?limit=50`` on the real API
(``cesar-api``, one uvicorn process, production settings: metrics, body limit, statement
timeout, rate limits on through Redis with a budget large enough not to refuse) against bare
FastAPI apps started the same way (one uvicorn process, uvloop + httptools, checked in each
process's memory map): one returning static JSON, one doing ``SELECT 1``, one running the
listing's own SQL (``cesar_core.jobs.listing.LIST_JOBS_JSON_BOUNDED``) on an asyncpg pool of
the same size with the same session settings (the API's statement timeout is a startup
setting of each pooled connection, so it costs neither app a round trip). The load generator is
``wrk`` (installed by ``scripts/install-system-deps.sh``); there is no fallback: without it
the HTTP part prints one line and no ratio. ``wrk``'s own CPU time is measured
(``wait4``): when it used >= 90% of its thread on a bare peer, that peer's figure is the load
generator's, and the ratio against it is refused (one line says so). Targets run in
interleaved rounds (the order rotates), ``BENCH_API_ROUNDS`` (3); medians are reported, with
the load average around each round and each server's CPU time per request.

WebSocket: 1,000 clients (a separate process) on one API process, and the same clients on a
bare fan-out app (one Redis ``XREAD`` loop, a queue per client, the same message shape);
100 events published 100 ms apart; every client must receive all 100; p50/p99 fan-out latency
(publish -> client receive), interleaved rounds, median; the API runs with
``WS_MAX_PER_ADDRESS`` and ``WS_CONNECT_RATE`` raised (all clients share one address).

Run: ``uv run python -m bench api`` (results in bench/results/api.json and api.md).
``BENCH_API_SKIP_WS=1`` skips the WebSocket part.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cesar_core.db import connect
from cesar_core.events import publish_events
from cesar_core.jobs.listing import list_jobs_json_bounded
from cesar_core.migrations import Migrator, default_migrations_dir
from cesar_core.redis import create_redis
from cesar_core.testing import admin_url, database_named, drop_database
from fastapi import FastAPI, Response, WebSocket

from bench.common import cpu_seconds, free_port, goal, goal_line, peak_rss_mb, rss_mb

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DURATION = float(os.environ.get("BENCH_API_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_API_ROUNDS", "3"))
WS_ROUNDS = int(os.environ.get("BENCH_WS_ROUNDS", str(ROUNDS)))
SKIP_WS = os.environ.get("BENCH_API_SKIP_WS", "") not in ("", "0")
CONNECTIONS = int(os.environ.get("BENCH_API_CONNECTIONS", "32"))
WS_CLIENTS = int(os.environ.get("BENCH_WS_CLIENTS", "1000"))
WS_EVENTS = 100
WS_SPACING = float(os.environ.get("BENCH_WS_SPACING", "0.1"))
POOL_SIZE = 10
STATEMENT_TIMEOUT_MS = 5000  # the API's default (API_STATEMENT_TIMEOUT_MS)
MAX_PAGE_BYTES = 8_388_608  # the API's default (API_MAX_PAGE_BYTES)
WRK_BOUND = 0.9  # wrk using this share of its one thread: the figure is wrk's, not the server's
ROOT = Path(__file__).resolve().parent.parent

# -- the bare peers (started as `uvicorn bench.bench_api:<name>`) -------------------------------

bare_static = FastAPI()


@bare_static.get("/livez")
async def _static() -> dict[str, str]:
    return {"status": "alive"}


@asynccontextmanager
async def _pool_lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["BENCH_DATABASE_URL"],
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        server_settings={"statement_timeout": f"{STATEMENT_TIMEOUT_MS}ms"},  # as the API's
    )
    yield
    await app.state.pool.close()


bare_select = FastAPI(lifespan=_pool_lifespan)


@bare_select.get("/select1")
async def _select1() -> dict[str, int]:
    async with bare_select.state.pool.acquire() as conn:
        return {"value": await conn.fetchval("SELECT 1")}


async def _page(conn: asyncpg.Connection) -> Response:
    page = await list_jobs_json_bounded(
        conn,
        status=None,
        job_type=None,
        created_after=None,
        created_before=None,
        search=None,
        before=None,
        limit=50,
        max_bytes=MAX_PAGE_BYTES,
    )
    body = b'{"items":' + page.items_array() + b',"next_cursor":null}'
    return Response(body, media_type="application/json")


@bare_select.get("/jobs")
async def _jobs() -> Response:
    """The listing's own SQL, nothing else: the fair peer of the API's jobs listing."""
    async with bare_select.state.pool.acquire() as conn:
        return await _page(conn)


@asynccontextmanager
async def _fanout_lifespan(app: FastAPI) -> AsyncIterator[None]:
    redis = create_redis(os.environ["BENCH_REDIS_URL"])
    app.state.clients = set()
    task = asyncio.create_task(
        _fanout_reader(redis, os.environ["BENCH_EVENT_STREAM"], app.state.clients)
    )
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    await redis.aclose()


async def _fanout_reader(redis: Any, stream: str, clients: set[asyncio.Queue[str]]) -> None:
    newest = await redis.xrevrange(stream, count=1)
    last = newest[0][0].decode() if newest else "0-0"
    while True:
        reply = await redis.xread({stream: last}, count=500, block=1000)
        for _stream, entries in reply or []:
            for raw_id, fields in entries:
                last = raw_id.decode()
                event = json.loads(fields[b"data"])
                text = json.dumps(
                    {
                        "type": "event",
                        "id": event.get("id"),
                        "stream_id": last,
                        "replayed": False,
                        "event": event,
                    }
                )
                for queue in list(clients):
                    with suppress(asyncio.QueueFull):
                        queue.put_nowait(text)


bare_fanout = FastAPI(lifespan=_fanout_lifespan)


@bare_fanout.websocket("/stream")
async def _stream(ws: WebSocket) -> None:
    """A bare fan-out: accept, hello, then every event from the shared reader."""
    await ws.accept()
    queue: asyncio.Queue[str] = asyncio.Queue(1000)
    clients: set[asyncio.Queue[str]] = bare_fanout.state.clients
    clients.add(queue)
    try:
        await ws.send_text('{"type": "hello"}')
        while True:
            await ws.send_text(await queue.get())
    except Exception:  # the client went away
        pass
    finally:
        clients.discard(queue)


# -- helpers ---------------------------------------------------------------------------------------


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _uvicorn(target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-server-header",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )


def _native_libs(pid: int) -> dict[str, bool]:
    """Whether the process really runs on uvloop and httptools (their extension modules are
    mapped into it)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {"uvloop": "uvloop/loop." in maps, "httptools": "httptools/parser/parser." in maps}


def _run_wrk(args: list[str]) -> tuple[str, float]:
    """Run wrk; its output and the CPU seconds it used (from wait4, so nothing is missed)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out[-500:]}")
    return out, usage.ru_utime + usage.ru_stime


def _wrk(url: str, server_pid: int) -> dict[str, Any]:
    _run_wrk(["wrk", "-t1", "-c8", "-d1s", url])  # warm-up
    cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    out, wrk_cpu = _run_wrk(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION:.0f}s", "--latency", url]
    )
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(server_pid)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    server_cpu = (
        (cpu_after - cpu_before) if cpu_before is not None and cpu_after is not None else None
    )
    return {
        "rps": round(rps, 1),
        "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "wrk_cpu_share": round(wrk_cpu / elapsed, 3),
        "server_cpu_share": round(server_cpu / elapsed, 3) if server_cpu is not None else None,
        "server_cpu_ms_per_request": round(server_cpu * 1000 / total, 4)
        if server_cpu is not None and total
        else None,
    }


# -- WebSocket fan-out -------------------------------------------------------------------------------

WS_CLIENTS_SCRIPT = """
import asyncio, json, sys, time
from websockets.asyncio.client import connect
url, n, expected = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def client(i, ready, lat, counts):
    async with connect(url, max_queue=None, open_timeout=60, compression=None) as ws:
        await ws.recv()  # hello
        ready.append(i)
        got = 0
        while got < expected:
            msg = json.loads(await ws.recv())
            if msg["type"] != "event":
                continue
            lat.append(time.time() - msg["event"]["payload"]["sent_at"])
            got += 1
        counts.append(got)
async def main():
    ready, lat, counts = [], [], []
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(client(i, ready, lat, counts)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    while len(ready) < n:
        await asyncio.sleep(0.05)
        if any(t.done() and t.exception() for t in tasks):
            raise next(t.exception() for t in tasks if t.done() and t.exception())
    print("READY", flush=True)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    lat.sort()
    print(json.dumps({"clients_done": len(counts), "messages": len(lat),
        "p50_ms": lat[len(lat)//2]*1000, "p99_ms": lat[int(len(lat)*0.99)]*1000,
        "max_ms": lat[-1]*1000}), flush=True)
asyncio.run(main())
"""


async def _websocket_run(url: str, pid: int, stream: str) -> dict[str, Any]:
    rss_before = rss_mb(pid)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WS_CLIENTS_SCRIPT,
        url,
        str(WS_CLIENTS),
        str(WS_EVENTS),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if line.strip() != b"READY":
        raise RuntimeError(f"WebSocket clients failed to connect to {url}: {line!r}")
    rss_connected = rss_mb(pid)
    await asyncio.sleep(0.5)  # every client past the API's resume wait
    redis = create_redis(REDIS_URL)
    started = time.perf_counter()
    for i in range(WS_EVENTS):
        event = {
            "id": str(uuid.uuid4()),
            "event_type": "bench",
            "payload": {"sent_at": time.time(), "n": i},
        }
        await publish_events(redis, [event], stream=stream)
        await asyncio.sleep(WS_SPACING)
    out = await asyncio.wait_for(proc.stdout.readline(), 180)
    elapsed = time.perf_counter() - started
    await proc.wait()
    await redis.aclose()
    result = json.loads(out)
    return {
        "clients": WS_CLIENTS,
        "events": WS_EVENTS,
        "delivered": result["messages"],
        "expected": WS_CLIENTS * WS_EVENTS,
        "all_delivered": result["messages"] == WS_CLIENTS * WS_EVENTS,
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        "max_ms": round(result["max_ms"], 2),
        "publish_span_s": round(elapsed, 2),
        "rss_mb_idle": rss_before,
        "rss_mb_1000_clients": rss_connected,
        "rss_mb_after": rss_mb(pid),
    }


async def _websocket(targets: dict[str, tuple[str, int]], stream: str) -> dict[str, Any]:
    """Interleaved rounds over the fan-out targets (order rotates); medians."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    names = list(targets)
    for number in range(WS_ROUNDS):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            url, pid = targets[name]
            runs[name].append(await _websocket_run(url, pid, stream))
            print(f"ws round {number + 1} {name}: p99 {runs[name][-1]['p99_ms']} ms", flush=True)
    redis = create_redis(REDIS_URL)
    await redis.delete(stream)
    await redis.aclose()
    summary: dict[str, Any] = {}
    for name, results in runs.items():
        summary[name] = {
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": statistics.median(r["p99_ms"] for r in results),
            "rounds_p99_ms": [r["p99_ms"] for r in results],
            "all_delivered": all(r["all_delivered"] for r in results),
            "delivered": [r["delivered"] for r in results],
            "rss_mb_idle": results[0]["rss_mb_idle"],
            "rss_mb_1000_clients": max(r["rss_mb_1000_clients"] or 0 for r in results),
            "rss_mb_after": results[-1]["rss_mb_after"],
        }
    return summary


# -- the run -----------------------------------------------------------------------------------------


async def _prepare_database() -> tuple[str, str]:
    name = f"cesar_bench_api_{uuid.uuid4().hex[:8]}"
    admin = await connect(admin_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_named(admin_url(), name)
    async with Migrator.connect(url, default_migrations_dir()) as migrator:
        await migrator.apply()
    conn = await connect(url)
    try:  # 200 jobs so the listing returns full pages of 50
        await conn.execute(
            "INSERT INTO job_queue (job_type, payload, status) "
            "SELECT 'maintenance.noop', '{\"echo\": 1}'::JSONB, 'succeeded' "
            "FROM generate_series(1, 200)"
        )
    finally:
        await conn.close()
    return name, url


def _api_env(base_env: dict[str, str], url: str, port: int, prefix: str) -> dict[str, str]:
    env = {
        **base_env,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "ENVIRONMENT": "development",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "DB_POOL_MIN_SIZE": str(POOL_SIZE),
        "DB_POOL_MAX_SIZE": str(POOL_SIZE),
        "RATE_LIMIT_PER_ADDRESS": "100000000/minute",
        "RATE_LIMIT_PREFIX": f"{prefix}rl",
        # every WebSocket client of the benchmark comes from 127.0.0.1
        "WS_MAX_PER_ADDRESS": str(WS_CLIENTS * 10),
        "WS_CONNECT_RATE": "100000000/minute",
        "EVENT_STREAM": f"{prefix}events",
        "JOB_QUEUE_NAME": f"{prefix}arq",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("COCKROACH_DB_URL", None)
    return env


# (target, bare peer, name of the goal, floor, goal): ratios judged against the peer
PAIRS = (
    ("api /livez", "bare static /livez", "API `/livez` vs bare static", 0.8, 0.9),
    (
        "api /api/v1/jobs?limit=50",
        "bare listing SQL",
        "jobs listing (50 rows) vs bare FastAPI with the same SQL",
        0.8,
        0.9,
    ),
)


def _http(
    targets: dict[str, tuple[str, int]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {target: [] for target in targets}
    rounds: list[dict[str, Any]] = []
    names = list(targets)
    for number in range(ROUNDS):
        order = names[number % len(names) :] + names[: number % len(names)]
        load_before = os.getloadavg()
        for target in order:
            url, pid = targets[target]
            runs[target].append(_wrk(url, pid))
        rounds.append(
            {
                "order": order,
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                "rps": {t: runs[t][-1]["rps"] for t in names},
            }
        )
        print(f"http round {number + 1}: {rounds[-1]['rps']}", flush=True)

    def median(results: list[dict[str, Any]], key: str) -> float | None:
        known = [r[key] for r in results if r[key] is not None]
        return statistics.median(known) if known else None

    http = {
        target: {
            "rps": median(results, "rps"),
            "p99_ms": median(results, "p99_ms"),
            "non_2xx": sum(r["non_2xx"] for r in results),
            "rounds_rps": [r["rps"] for r in results],
            "wrk_cpu_share": median(results, "wrk_cpu_share"),
            "server_cpu_share": median(results, "server_cpu_share"),
            "server_cpu_ms_per_request": median(results, "server_cpu_ms_per_request"),
        }
        for target, results in runs.items()
    }
    return http, rounds


def main(results_dir: Path) -> None:
    has_wrk = shutil.which("wrk") is not None
    name, url = asyncio.run(_prepare_database())
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    extra_path = os.environ.get("PYTHONPATH", "")
    base_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), extra_path) if p),
    }
    api_port, static_port, select_port, fanout_port = (free_port() for _ in range(4))
    procs = {
        "api": subprocess.Popen(
            [sys.executable, "-m", "cesar_api.main"],
            cwd=ROOT,
            env=_api_env(base_env, url, api_port, prefix),
        ),
        "static": _uvicorn("bench.bench_api:bare_static", static_port, base_env),
        "select": _uvicorn(
            "bench.bench_api:bare_select", select_port, {**base_env, "BENCH_DATABASE_URL": url}
        ),
        "fanout": _uvicorn(
            "bench.bench_api:bare_fanout",
            fanout_port,
            {**base_env, "BENCH_REDIS_URL": REDIS_URL, "BENCH_EVENT_STREAM": f"{prefix}events"},
        ),
    }
    api_pid, static_pid, select_pid = procs["api"].pid, procs["static"].pid, procs["select"].pid
    targets = {
        "bare static /livez": (f"http://127.0.0.1:{static_port}/livez", static_pid),
        "api /livez": (f"http://127.0.0.1:{api_port}/livez", api_pid),
        "api /health": (f"http://127.0.0.1:{api_port}/health", api_pid),
        "bare SELECT 1": (f"http://127.0.0.1:{select_port}/select1", select_pid),
        "bare listing SQL": (f"http://127.0.0.1:{select_port}/jobs", select_pid),
        "api /api/v1/jobs?limit=50": (
            f"http://127.0.0.1:{api_port}/api/v1/jobs?limit=50",
            api_pid,
        ),
    }
    http: dict[str, Any] = {}
    rounds: list[dict[str, Any]] = []
    ws: dict[str, Any] | None = None
    api_rss: dict[str, float | None] = {}
    try:
        _wait_http(f"http://127.0.0.1:{api_port}/livez")
        _wait_http(f"http://127.0.0.1:{static_port}/livez")
        _wait_http(f"http://127.0.0.1:{select_port}/select1")
        time.sleep(2)  # let the API settle before its idle figure
        api_rss["idle"] = rss_mb(api_pid)
        native = {name: _native_libs(proc.pid) for name, proc in procs.items() if name != "fanout"}
        if has_wrk:
            http, rounds = _http(targets)
        api_rss["after_http"] = rss_mb(api_pid)
        if not SKIP_WS:
            ws = asyncio.run(
                _websocket(
                    {
                        "bare fan-out": (
                            f"ws://127.0.0.1:{fanout_port}/stream",
                            procs["fanout"].pid,
                        ),
                        "api": (f"ws://127.0.0.1:{api_port}/api/v1/events/stream", api_pid),
                    },
                    f"{prefix}events",
                )
            )
        api_rss["peak"] = peak_rss_mb(api_pid)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(drop_database(name))

    verdicts: list[str] = []
    goals: list[dict[str, Any]] = []
    ratios: dict[str, float | None] = {}
    if not has_wrk:
        verdicts.append(
            "wrk is not installed (scripts/install-system-deps.sh installs it as root): no "
            "HTTP figures and no ratios."
        )
    else:
        for target, peer, label, floor, target_goal in PAIRS:
            bound = (http[peer]["wrk_cpu_share"] or 0) >= WRK_BOUND
            if bound:
                verdicts.append(
                    f"{label}: not judged, the bare peer is bound by the load generator (wrk "
                    f"used {http[peer]['wrk_cpu_share']:.0%} of its thread)."
                )
                ratios[label] = None
                continue
            ratio = round(http[target]["rps"] / http[peer]["rps"], 3)
            ratios[label] = ratio
            goals.append(
                goal(
                    label,
                    ratio,
                    floor=floor,
                    target=target_goal,
                    higher_is_better=True,
                    unit="%",
                    peer=f"{http[target]['rps']:.0f} vs {http[peer]['rps']:.0f} req/s",
                )
            )
        ratios["jobs listing vs bare SELECT 1 (information)"] = round(
            http["api /api/v1/jobs?limit=50"]["rps"] / http["bare SELECT 1"]["rps"], 3
        )
    if ws is not None:
        bare_p99, api_p99 = ws["bare fan-out"]["p99_ms"], ws["api"]["p99_ms"]
        ws_ratio = round(api_p99 / bare_p99, 2) if bare_p99 else None
        goals.append(
            goal(
                f"WebSocket fan-out p99, {WS_CLIENTS} clients, vs bare fan-out",
                ws_ratio,
                floor=2.0,
                target=1.5,
                higher_is_better=False,
                unit="x",
                peer=f"{api_p99} ms vs {bare_p99} ms",
            )
        )
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "load_generator": "wrk" if has_wrk else None,
        "connections": CONNECTIONS,
        "seconds": DURATION,
        "rounds": ROUNDS,
        "uvicorn": "1 process each, --loop uvloop --http httptools, access log and server header off",
        "native_libs_loaded": native,
        "http": http,
        "round_details": rounds,
        "ratios": ratios,
        "goals": goals,
        "verdicts": verdicts,
        "api_rss_mb": api_rss,
        "websocket": ws,
    }
    (results_dir / "api.json").write_text(json.dumps(result, indent=2) + "\n")
    text = _markdown(result)
    (results_dir / "api.md").write_text(text)
    print(text)


def _markdown(result: dict[str, Any]) -> str:
    http, ws = result["http"], result["websocket"]
    lines = [
        "# API benchmark",
        "",
        f"{result['machine']['cpus']} CPUs, Python {result['machine']['python']}; load: "
        f"{result['load_generator'] or 'none (wrk missing)'}, 1 thread, {CONNECTIONS} "
        f"connections, {DURATION:.0f} s per target (after a 1 s warm-up), {ROUNDS} interleaved "
        "rounds (order rotated), median reported; every server one uvicorn process (uvloop + "
        f"httptools, checked in each process: {result['native_libs_loaded']}), access log and "
        f"server header off; the bare database apps use an asyncpg pool of {POOL_SIZE}, like "
        "the API. CPU ms/req: the server process's CPU time per request (/proc); wrk CPU: the "
        f"share of its one thread wrk used (>= {WRK_BOUND:.0%}: the figure is wrk's).",
        "",
        "## Goals (peer measured in the same run)",
        "",
        *[goal_line(row) for row in result["goals"]],
        *[f"- {line}" for line in result["verdicts"]],
        "",
    ]
    if http:
        lines += [
            "| target | req/s (median) | rounds | p99 ms | non-2xx | server CPU ms/req "
            "| server CPU share | wrk CPU share |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for target, row in http.items():
            each = " / ".join(f"{x:.0f}" for x in row["rounds_rps"])
            lines.append(
                f"| {target} | {row['rps']:.0f} | {each} | {row['p99_ms']} | {row['non_2xx']} "
                f"| {row['server_cpu_ms_per_request']} | {row['server_cpu_share']} "
                f"| {row['wrk_cpu_share']} |"
            )
        lines += ["", "Load average (1/5/15 min) before and after each round:", ""]
        for number, info in enumerate(result["round_details"], 1):
            lines.append(f"- round {number}: {info['loadavg_before']} -> {info['loadavg_after']}")
        lines += [
            "",
            "Ratios: "
            + "; ".join(
                f"{k} {v:.0%}" if v is not None else f"{k} not judged"
                for k, v in result["ratios"].items()
            ),
            "",
        ]
    rss = result["api_rss_mb"]
    lines += [
        f"API RSS: {rss.get('idle')} MB idle, {rss.get('after_http')} MB after the HTTP load, "
        f"peak {rss.get('peak')} MB"
        + (f" (with {WS_CLIENTS} WebSocket clients)." if ws is not None else "."),
        "",
        "## WebSocket fan-out",
        "",
    ]
    if ws is None:
        lines += ["skipped (BENCH_API_SKIP_WS)", ""]
    else:
        lines += [
            f"{WS_CLIENTS} clients (one client process), {WS_EVENTS} events published "
            f"{WS_SPACING * 1000:.0f} ms apart, {WS_ROUNDS} interleaved rounds, median; "
            "latency is publish -> client receive.",
            "",
            "| server | p50 ms | p99 ms | p99 per round | all delivered | RSS idle / with "
            "clients / after MB |",
            "|---|---:|---:|---|---|---|",
        ]
        for server, row in ws.items():
            lines.append(
                f"| {server} | {row['p50_ms']} | {row['p99_ms']} | "
                f"{' / '.join(str(x) for x in row['rounds_p99_ms'])} | "
                f"{'yes' if row['all_delivered'] else 'NO ' + str(row['delivered'])} | "
                f"{row['rss_mb_idle']} / {row['rss_mb_1000_clients']} / {row['rss_mb_after']} |"
            )
        lines.append("")
    lines += _notes(result)
    return "\n".join(lines) + "\n"


def _notes(result: dict[str, Any]) -> list[str]:
    """Where the time goes, from this run's CPU figures."""
    http = result["http"]
    if not http:
        return []

    def cpu(target: str) -> float | None:
        value: float | None = http[target]["server_cpu_ms_per_request"]
        return value

    return [
        "## Where the time goes",
        "",
        f"- Server CPU per request: API `/livez` {cpu('api /livez')} ms vs bare static "
        f"{cpu('bare static /livez')} ms (the API's middleware: metrics and body limit; "
        f"CORS when configured); API listing {cpu('api /api/v1/jobs?limit=50')} ms vs "
        f"bare listing {cpu('bare listing SQL')} ms (rate-limit budget, key check, "
        "FastAPI's validation of the eight query parameters and the dependencies, routing "
        "among the API's routes, middleware).",
        "- The page itself is built by the database as one JSON text (`cesar_core.jobs.listing`)"
        " and sent as bytes; no row becomes a Python object in either app.",
        "",
    ]


if __name__ == "__main__":
    main(ROOT / "bench" / "results")
