"""A body that is not a JSON-RPC request gets a 400 (with the JSON-RPC error object), never a
200; found by the API fuzz test (a POST without a body was answered 200)."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", -32700),
        (b"{not json", -32700),
        (b"[]", -32600),
        (b'{"jsonrpc": "2.0"}', -32600),
        (b'{"jsonrpc": "1.0", "method": "GetTask"}', -32600),
    ],
)
async def test_not_a_json_rpc_request_is_a_400(
    client: httpx.AsyncClient, auth: dict[str, str], content: bytes, code: int
) -> None:
    agent = await client.post(
        "/api/v1/agents", json={"name": "rpc-target", "agent_type": "bot"}, headers=auth
    )
    assert agent.status_code == 201, agent.text
    response = await client.post(
        f"/a2a/agents/{agent.json()['id']}",
        content=content,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
