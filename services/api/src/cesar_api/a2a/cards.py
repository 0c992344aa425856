"""An agent card per registered agent, built from its ``agents`` row."""

from __future__ import annotations

from typing import Any

from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, TransportProtocol

__all__ = ["SECURITY_SCHEME", "agent_card", "agent_path", "card_path"]

SECURITY_SCHEME = "cesarApiKey"
_TEXT = ["text/plain"]


def agent_path(agent_id: object) -> str:
    """Where the agent's JSON-RPC endpoint is (relative to the API's base URL)."""
    return f"/a2a/agents/{agent_id}"


def card_path(agent_id: object) -> str:
    return f"{agent_path(agent_id)}/.well-known/agent-card.json"


def _skills(agent: dict[str, Any]) -> list[AgentSkill]:
    capabilities = list(agent.get("capabilities") or [])
    if not capabilities:
        return [
            AgentSkill(
                id="converse",
                name="converse",
                description=f"answers text messages as a {agent['agent_type']} agent",
                tags=[agent["agent_type"]],
                input_modes=_TEXT,
                output_modes=_TEXT,
            )
        ]
    return [
        AgentSkill(
            id=capability,
            name=capability,
            description=f"{capability} ({agent['agent_type']} agent)",
            tags=[agent["agent_type"], capability],
            input_modes=_TEXT,
            output_modes=_TEXT,
        )
        for capability in capabilities
    ]


def agent_card(agent: dict[str, Any], base_url: str, version: str) -> AgentCard:
    """The public card of ``agent``; ``base_url`` is where clients reach this API."""
    description = agent.get("description") or f"CESAR {agent['agent_type']} agent {agent['name']}"
    return AgentCard(
        name=agent["name"],
        description=description,
        version=version,
        provider=AgentProvider(organization="CESAR", url=base_url),
        supported_interfaces=[
            AgentInterface(
                url=f"{base_url.rstrip('/')}{agent_path(agent['id'])}",
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_CURRENT,
            )
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes={
            SECURITY_SCHEME: SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer",
                    description="a CESAR API key (cesar-api-keys create <name>); sending and "
                    "cancelling need the write scope",
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={SECURITY_SCHEME: StringList()})],
        default_input_modes=_TEXT,
        default_output_modes=_TEXT,
        skills=_skills(agent),
    )
