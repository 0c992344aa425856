"""Property-based fuzzing of the whole OpenAPI document with schemathesis, against a real
``cesar-api`` process: no 500s, and every response conforms to the schema it documents."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest
from cesar_core.redis import RedisClient

from .conftest import MakeKey, free_port

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)


@pytest.mark.slow
async def test_openapi_fuzz(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    redis: RedisClient,
    make_key: MakeKey,
    tmp_path: Path,
) -> None:
    key = await make_key("fuzz")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ENVIRONMENT": "development",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "RATE_LIMIT_ENABLED": "false",
        "EVENT_STREAM": f"{redis_prefix}events",
        "RATE_LIMIT_PREFIX": f"{redis_prefix}rl",
        "JOB_QUEUE_NAME": f"{redis_prefix}arq",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("COCKROACH_DB_URL", None)
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cesar_api.main", env=env, stdout=log, stderr=log
        )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(200):
                try:
                    if (await http.get("/livez")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        st = Path(sys.executable).parent / "st"
        fuzz = await asyncio.create_subprocess_exec(
            str(st),
            "run",
            f"{base}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            os.environ.get("API_FUZZ_EXAMPLES", "15"),
            "--phases",
            "examples,coverage,fuzzing",
            # One worker: hypothesis raises the (process-wide) recursion limit while it runs a
            # test, and CPython 3.11's ast.parse in another thread then fails with "AST
            # constructor recursion depth mismatch" (hypothesis parses lambdas for reprs).
            "--workers",
            "1",
            "--seed",
            "4242",
            "--no-shrink",
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
            "--request-timeout",
            "10",
            "--no-color",
            "-H",
            f"Authorization: Bearer {key}",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(fuzz.communicate(), 240)
        report = out.decode(errors="replace")
        assert fuzz.returncode == 0, (
            report[-12000:] + "\n--- API log ---\n" + log_path.read_text()[-4000:]
        )
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 15)
