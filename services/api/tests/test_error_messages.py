"""Error answers the README promises: 400 for a body that is not JSON (422 stays for JSON that
fails validation), and a 409 for a duplicate that names the field instead of repeating the
database's own text."""

from __future__ import annotations

import httpx
import pytest

from .test_safety import assert_error

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "body", [b'{"name": "alpha", "agent_type":', b"{'name': 'alpha'}", b"not json", b"[1, 2"]
)
async def test_unparseable_json_is_400_in_the_usual_shape(
    client: httpx.AsyncClient, auth: dict[str, str], body: bytes
) -> None:
    response = await client.post("/api/v1/agents", content=body, headers={**auth, **JSON})
    error = assert_error(response, 400, "bad_request")
    assert "not valid JSON" in str(error["message"]), error


async def test_valid_json_that_fails_validation_stays_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post("/api/v1/agents", json={"name": "alpha"}, headers=auth)
    error = assert_error(response, 422, "invalid_input")
    assert "agent_type" in str(error["message"])


async def test_a_duplicate_name_is_409_naming_the_field_not_the_database_text(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    agent = {"name": "planner-1", "agent_type": "planner"}
    assert (await client.post("/api/v1/agents", json=agent, headers=auth)).status_code == 201
    error = assert_error(
        await client.post("/api/v1/agents", json=agent, headers=auth), 409, "conflict"
    )
    message = str(error["message"])
    assert message.startswith("name: "), message
    assert "already exists" in message and "agent" in message
    for raw in ("duplicate key", "constraint", "Key (", "violates"):
        assert raw not in message, message
    assert error["details"] == [{"field": "name", "problem": "already exists"}]
