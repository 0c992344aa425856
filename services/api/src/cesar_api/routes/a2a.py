"""/a2a/agents/{agent_id}: the Agent2Agent protocol, one agent per URL.

- ``GET /a2a/agents/{agent_id}/.well-known/agent-card.json``: the agent's card (the A2A
  well-known path, under the agent's base URL ``/a2a/agents/{agent_id}``);
- ``POST /a2a/agents/{agent_id}``: A2A JSON-RPC 2.0 (``SendMessage``, ``SendStreamingMessage``,
  ``GetTask``, ``CancelTask``, ``SubscribeToTask``), answered by the SDK's dispatcher with
  :class:`~cesar_api.a2a.handler.JobRequestHandler`.

Keys as elsewhere: sending and cancelling need a key with the ``write`` scope; the card and
reads need one only when READS_REQUIRE_KEY. An unknown agent is a 404 before any JSON-RPC.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from cesar_api import __version__
from cesar_api.a2a.cards import agent_card
from cesar_api.a2a.handler import JobRequestHandler
from cesar_api.database import read
from cesar_api.deps import Credentials, ReadKey, ResourcesDep, require_read, require_write
from cesar_api.errors import NotFound
from cesar_api.repositories import agents as agents_repo
from cesar_api.resources import Resources

__all__ = ["WRITE_METHODS", "router"]

router = APIRouter(prefix="/a2a/agents", tags=["a2a"])

WRITE_METHODS = frozenset({"SendMessage", "SendStreamingMessage", "CancelTask"})


class _ContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's context plus what the handler needs: the API's resources and the agent."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state.get("headers", {}).pop("authorization", None)  # never carried along
        context.state["resources"] = request.app.state.resources
        context.state["agent"] = request.state.a2a_agent
        return context


_dispatcher = JsonRpcDispatcher(
    request_handler=JobRequestHandler(), context_builder=_ContextBuilder()
)


async def _agent(resources: Resources, agent_id: UUID) -> dict[str, Any]:
    row = await read(resources.db(), lambda conn: agents_repo.get(conn, agent_id))
    if not row:
        raise NotFound(f"no agent with id {agent_id}")
    return row


def _base_url(request: Request, resources: Resources) -> str:
    """API_URL when it is set, else the URL this request came to."""
    settings = resources.settings
    if "api_url" in settings.model_fields_set:
        return settings.api_url.rstrip("/")
    return str(request.base_url).rstrip("/")


_CARD = {
    200: {
        "description": "the agent's A2A agent card (protocol JSON)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_RPC_BODY = {
    "requestBody": {
        "required": True,
        "description": "an A2A JSON-RPC 2.0 request: SendMessage, SendStreamingMessage "
        "(answered as Server-Sent Events), GetTask, CancelTask, SubscribeToTask",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["jsonrpc", "method"],
                    "properties": {
                        "jsonrpc": {"type": "string", "enum": ["2.0"]},
                        "id": {"type": ["string", "integer"]},
                        "method": {"type": "string"},
                        "params": {"type": "object"},
                    },
                }
            }
        },
    }
}
_RPC_RESPONSES = {
    400: {
        "description": "the body is not a JSON-RPC 2.0 request (JSON-RPC parse error -32700 or "
        "invalid request -32600)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    200: {
        "description": "a JSON-RPC response (errors too, as JSON-RPC errors), or an event "
        "stream for the streaming methods",
        "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {}},
    },
}


def _rpc_error(code: int, message: str) -> JSONResponse:
    """A body that is not a JSON-RPC request at all: the JSON-RPC error object, with HTTP 400
    (bad input is a 4xx everywhere in this API; well-formed requests keep JSON-RPC's 200)."""
    return JSONResponse(
        {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}},
        status_code=400,
    )


@router.get(
    "/{agent_id}/.well-known/agent-card.json",
    response_class=JSONResponse,
    responses=_CARD,  # type: ignore[arg-type]
    summary="The agent's A2A agent card",
)
async def get_agent_card(
    agent_id: UUID, request: Request, resources: ResourcesDep, _key: ReadKey
) -> JSONResponse:
    """Name, skills (one per capability), the JSON-RPC endpoint and how to authenticate."""
    agent = await _agent(resources, agent_id)
    card = agent_card(agent, _base_url(request, resources), __version__)
    return JSONResponse(agent_card_to_dict(card))


@router.post(
    "/{agent_id}",
    response_class=Response,
    responses=_RPC_RESPONSES,  # type: ignore[arg-type]
    openapi_extra=_RPC_BODY,
    summary="A2A JSON-RPC endpoint of the agent",
)
async def a2a_rpc(
    agent_id: UUID, request: Request, resources: ResourcesDep, credentials: Credentials
) -> Response:
    """Send a message (a task backed by an ``a2a.task`` job), stream it, get or cancel it."""
    try:
        body = await request.json()
    except ValueError:
        return _rpc_error(-32700, "Parse error: the body is not JSON")
    if not isinstance(body, dict):
        return _rpc_error(-32600, "Invalid Request: the body must be a JSON-RPC 2.0 object")
    method = body.get("method")
    if body.get("jsonrpc") != "2.0" or not isinstance(method, str) or not method:
        return _rpc_error(
            -32600, 'Invalid Request: "jsonrpc" must be "2.0" and "method" a non-empty string'
        )
    if method in WRITE_METHODS:
        await require_write(request, resources, credentials)
    else:
        await require_read(request, resources, credentials)
    request.state.a2a_agent = await _agent(resources, agent_id)
    return await _dispatcher.handle_requests(request)
