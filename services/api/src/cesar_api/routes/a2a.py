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

from typing import Annotated, Any, Literal
from uuid import UUID

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, StrictInt, StrictStr

from cesar_api import __version__
from cesar_api.a2a.cards import agent_card
from cesar_api.a2a.handler import JobRequestHandler
from cesar_api.database import read
from cesar_api.deps import Credentials, ReadKey, ResourcesDep, require_read, require_write
from cesar_api.errors import NotFound
from cesar_api.repositories import agents as agents_repo
from cesar_api.resources import Resources
from cesar_api.schemas import StrictModel

__all__ = ["WRITE_METHODS", "router"]

router = APIRouter(prefix="/a2a/agents", tags=["a2a"])

WRITE_METHODS = frozenset({"SendMessage", "SendStreamingMessage", "CancelTask"})


class RpcRequest(StrictModel):
    """A JSON-RPC 2.0 request; ``params`` as the A2A method defines them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": "A2A JSON-RPC: SendMessage, SendStreamingMessage (answered as "
            "Server-Sent Events), GetTask, CancelTask, SubscribeToTask"
        },
    )

    jsonrpc: Literal["2.0"]
    id: StrictStr | StrictInt | None = None
    method: Annotated[str, Field(min_length=1, max_length=100)]
    params: dict[str, Any] = Field(default_factory=dict)


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
_RPC_RESPONSES = {
    200: {
        "description": "a JSON-RPC response (errors too, as JSON-RPC errors), or an event "
        "stream for the streaming methods",
        "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {}},
    }
}


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
    summary="A2A JSON-RPC endpoint of the agent",
)
async def a2a_rpc(
    agent_id: UUID,
    body: RpcRequest,
    request: Request,
    resources: ResourcesDep,
    credentials: Credentials,
) -> Response:
    """Send a message (a task backed by an ``a2a.task`` job), stream it, get or cancel it.

    A body that is not a JSON-RPC 2.0 request object is a 4xx like everywhere in this API;
    errors of a well-formed call are JSON-RPC errors (HTTP 200), as A2A clients expect."""
    if body.method in WRITE_METHODS:
        await require_write(request, resources, credentials)
    else:
        await require_read(request, resources, credentials)
    request.state.a2a_agent = await _agent(resources, agent_id)
    return await _dispatcher.handle_requests(request)
