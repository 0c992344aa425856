"""API keys (401/403), the keys CLI, rate limits (429), body limits (413), CORS, error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from cesar_api import keys_cli
from cesar_api.app import create_app
from cesar_api.database import write
from cesar_api.repositories import api_keys
from cesar_api.settings import ApiSettings
from cesar_core.db import Database

from .conftest import MakeKey, client_for

AGENT = {"name": "alpha", "agent_type": "planner"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


async def test_writes_need_a_valid_key(
    client: httpx.AsyncClient, make_key: MakeKey, db: Database
) -> None:
    error = assert_error(await client.post("/api/v1/agents", json=AGENT), 401, "unauthorized")
    assert "API key" in str(error["message"])
    response = await client.post(
        "/api/v1/agents", json=AGENT, headers={"Authorization": "Bearer cesar_nope"}
    )
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(
        await client.post("/api/v1/agents", json=AGENT, headers={"Authorization": "Basic abc"}),
        401,
        "unauthorized",
    )

    reader = await make_key("reader", ("read",))
    error = assert_error(
        await client.post(
            "/api/v1/agents", json=AGENT, headers={"Authorization": f"Bearer {reader}"}
        ),
        403,
        "forbidden",
    )
    assert "write" in str(error["message"])
    # the read-only key reads fine
    response = await client.get("/api/v1/agents", headers={"Authorization": f"Bearer {reader}"})
    assert response.status_code == 200

    writer = await make_key("writer", ("read", "write"))
    headers = {"Authorization": f"Bearer {writer}"}
    assert (await client.post("/api/v1/agents", json=AGENT, headers=headers)).status_code == 201
    await write(db, lambda conn: api_keys.revoke(conn, "writer"))
    error = assert_error(
        await client.post("/api/v1/agents", json={**AGENT, "name": "b"}, headers=headers),
        403,
        "forbidden",
    )
    assert "revoked" in str(error["message"])
    # stored hashed: the secret itself is nowhere in the table
    async with db.connection() as conn:
        hashes = await conn.fetch("SELECT key_hash, key_prefix FROM api_keys")
    assert all(writer != row["key_hash"] and len(row["key_hash"]) == 64 for row in hashes)


async def test_reads_open_by_default_and_keyed_by_setting(
    make_settings: Callable[..., ApiSettings], make_key: MakeKey, redis: object
) -> None:
    key = await make_key("r", ("read",))
    async with client_for(create_app(make_settings(reads_require_key=True))) as client:
        assert_error(await client.get("/api/v1/agents"), 401, "unauthorized")
        ok = await client.get("/api/v1/agents", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        health = await client.get("/health")  # no key: probes are never keyed
        assert health.status_code == 200, health.text
        assert health.json()["components"]["database"]["status"] == "healthy"
        assert (await client.get("/livez")).status_code == 200


async def test_rate_limit_per_address_429_with_retry_after(
    make_settings: Callable[..., ApiSettings], redis: object
) -> None:
    # day-long windows: a minute window could turn between the requests and admit the fourth
    settings = make_settings(rate_limit_per_address="3/day")
    async with client_for(create_app(settings)) as client:
        for _ in range(3):
            assert (await client.get("/api/v1/agents")).status_code == 200
        response = await client.get("/api/v1/agents")
        error = assert_error(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 86400
        assert "client address" in str(error["message"])
        # health probes are never limited
        assert (await client.get("/livez")).status_code == 200
        assert "cesar_api_rate_limited_total" in (await client.get("/metrics")).text


async def test_rate_limit_per_key_shared_through_redis(
    make_settings: Callable[..., ApiSettings], make_key: MakeKey, redis: object
) -> None:
    """Two app instances (two replicas) share the per-key budget through Redis."""
    # day-long windows: a minute window could turn between the requests and admit the third
    settings = make_settings(rate_limit_per_key="2/day", rate_limit_per_address="1000/day")
    one, two = await make_key("one"), await make_key("two")
    async with client_for(create_app(settings)) as a, client_for(create_app(settings)) as b:
        h1 = {"Authorization": f"Bearer {one}"}
        assert (await a.get("/api/v1/agents", headers=h1)).status_code == 200
        assert (await b.get("/api/v1/agents", headers=h1)).status_code == 200
        response = await a.get("/api/v1/agents", headers=h1)
        error = assert_error(response, 429, "rate_limited")
        assert "API key" in str(error["message"])
        assert response.headers["retry-after"]
        h2 = {"Authorization": f"Bearer {two}"}
        assert (await b.get("/api/v1/agents", headers=h2)).status_code == 200


async def test_body_limit_413(
    make_settings: Callable[..., ApiSettings], make_key: MakeKey, redis: object
) -> None:
    key = await make_key()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with client_for(create_app(make_settings(max_body_bytes=4096))) as client:
        big = b'{"events": [' + b",".join([b'{"event_type": "x"}'] * 400) + b"]}"
        error = assert_error(
            await client.post("/api/v1/events", content=big, headers=headers),
            413,
            "payload_too_large",
        )
        assert "4096" in str(error["message"])

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
            for _ in range(20):
                yield b" " * 1000

        response = await client.post("/api/v1/events", content=chunks(), headers=headers)
        assert_error(response, 413, "payload_too_large")
        ok = await client.post(
            "/api/v1/events", json={"events": [{"event_type": "small"}]}, headers=headers
        )
        assert ok.status_code == 201


async def test_cors_closed_by_default_open_when_configured(
    client: httpx.AsyncClient, make_settings: Callable[..., ApiSettings], redis: object
) -> None:
    preflight = {
        "Origin": "https://ops.example.org",
        "Access-Control-Request-Method": "POST",
    }
    response = await client.options("/api/v1/agents", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    settings = make_settings(cors_origins="https://ops.example.org, https://b.example.org")
    async with client_for(create_app(settings)) as open_client:
        response = await open_client.options("/api/v1/agents", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://ops.example.org"
        other = await open_client.options(
            "/api/v1/agents", headers={**preflight, "Origin": "https://evil.example.com"}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_validation_errors_name_field_and_problem(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    error = assert_error(
        await client.post(
            "/api/v1/agents", json={"agent_type": "x", "status": "sleepy"}, headers=auth
        ),
        422,
        "invalid_input",
    )
    assert "body.name" in str(error["message"])
    assert "body.status" in str(error["message"])
    fields = {d["field"] for d in error["details"]}  # type: ignore[attr-defined]
    assert {"body.name", "body.status"} <= fields
    error = assert_error(
        await client.post(
            "/api/v1/agents",
            content=b"{not json",
            headers={**auth, "Content-Type": "application/json"},
        ),
        400,
        "bad_request",
    )
    assert_error(await client.get("/api/v1/agents?limit=501"), 422, "invalid_input")
    assert_error(await client.get("/api/v1/agents?cursor=garbage"), 422, "invalid_input")
    assert_error(await client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(await client.delete("/api/v1/agents"), 405, "method_not_allowed")


def test_keys_cli_create_list_revoke(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("COCKROACH_DB_URL", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "development")

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            keys_cli.main(list(argv))
        out, err = capsys.readouterr()
        return int(exit_info.value.code or 0), out, err

    code, out, err = run("create", "ops", "--scope", "read")
    assert code == 0
    secret = out.strip()
    assert secret.startswith("cesar_") and len(secret) > 30
    assert "shown only once" in err
    code, _, err = run("create", "ops")
    assert code == 1 and "exists" in err
    code, out, _ = run("list")
    assert "ops" in out and "read" in out and "active" in out and secret not in out
    code, out, _ = run("revoke", "ops")
    assert code == 0
    code, out, _ = run("list")
    assert "revoked" in out
    code, _, err = run("revoke", "ghost")
    assert code == 1 and "no key" in err
