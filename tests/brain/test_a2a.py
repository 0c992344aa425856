"""A2A with the official a2a-sdk client against the real API and a worker running the tasks."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError

from .conftest import FAKE_MODEL, Brain

pytestmark = pytest.mark.slow


def _message(text: str, context_id: str = "") -> Message:
    return Message(
        role=Role.ROLE_USER,
        message_id=str(uuid.uuid4()),
        context_id=context_id,
        parts=[Part(text=text)],
    )


async def _rows(brain: Brain, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with brain.db.connection() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


async def test_card_stream_get_and_conversation(brain: Brain) -> None:
    agent = await brain.agent("echo-1", capabilities=["echo", "repeat"], description="repeats")
    base = f"{brain.url}/a2a/agents/{agent['id']}"
    async with brain.http() as http:
        # discovery: the well-known path under the agent's base URL
        card = await A2ACardResolver(http, base).get_agent_card()
        assert card.name == "echo-1"
        assert card.description == "repeats"
        assert card.capabilities.streaming
        assert [s.id for s in card.skills] == ["echo", "repeat"]
        assert card.supported_interfaces[0].url == base
        assert card.supported_interfaces[0].protocol_binding == "JSONRPC"

        client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
        events: list[StreamResponse] = [
            e async for e in client.send_message(SendMessageRequest(message=_message("hello")))
        ]
        first, last = events[0], events[-1]
        assert first.HasField("task")
        assert first.task.status.state in (
            TaskState.TASK_STATE_SUBMITTED,
            TaskState.TASK_STATE_WORKING,
        )
        task_id, context_id = first.task.id, first.task.context_id
        artifacts = [e.artifact_update for e in events if e.HasField("artifact_update")]
        assert [get_artifact_text(a.artifact) for a in artifacts] == ["echo-1 received: hello"]
        assert last.HasField("status_update")
        assert last.status_update.task_id == task_id
        assert last.status_update.status.state == TaskState.TASK_STATE_COMPLETED

        task: Task = await client.get_task(GetTaskRequest(id=task_id))
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert task.context_id == context_id
        assert [get_artifact_text(a) for a in task.artifacts] == ["echo-1 received: hello"]
        assert [(m.role, get_message_text(m)) for m in task.history] == [
            (Role.ROLE_USER, "hello"),
            (Role.ROLE_AGENT, "echo-1 received: hello"),
        ]

        # the same conversation (context) again, without streaming: the final task comes back
        blocking = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
        answers = [
            e
            async for e in blocking.send_message(
                SendMessageRequest(message=_message("again", context_id))
            )
        ]
        assert len(answers) == 1 and answers[0].HasField("task")
        second = answers[0].task
        assert second.context_id == context_id and second.id != task_id
        assert second.status.state == TaskState.TASK_STATE_COMPLETED
        assert get_artifact_text(second.artifacts[0]) == "echo-1 received: again"
        await client.close()
        await blocking.close()

    jobs = await _rows(brain, "SELECT id, job_type, status FROM job_queue ORDER BY created_at")
    assert [(str(j["id"]), j["job_type"], j["status"]) for j in jobs] == [
        (task_id, "a2a.task", "succeeded"),
        (second.id, "a2a.task", "succeeded"),
    ]
    conversations = await _rows(
        brain, "SELECT id, participant_ids, message_count, status FROM a2a_conversations"
    )
    assert conversations == [
        {
            "id": uuid.UUID(context_id),
            "participant_ids": [uuid.UUID(agent["id"])],
            "message_count": 4,
            "status": "active",
        }
    ]
    messages = await _rows(
        brain,
        "SELECT message_type, correlation_id, sender_agent_id, recipient_agent_id "
        "FROM a2a_messages ORDER BY created_at",
    )
    me = uuid.UUID(agent["id"])
    assert messages == [
        {
            "message_type": "request",
            "correlation_id": task_id,
            "sender_agent_id": None,
            "recipient_agent_id": me,
        },
        {
            "message_type": "response",
            "correlation_id": task_id,
            "sender_agent_id": me,
            "recipient_agent_id": None,
        },
        {
            "message_type": "request",
            "correlation_id": second.id,
            "sender_agent_id": None,
            "recipient_agent_id": me,
        },
        {
            "message_type": "response",
            "correlation_id": second.id,
            "sender_agent_id": me,
            "recipient_agent_id": None,
        },
    ]


async def test_agent_with_a_model_answers_through_the_llm(brain: Brain) -> None:
    agent = await brain.agent("thinker", config={"model": FAKE_MODEL, "system": "be brief"})
    async with brain.http() as http:
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
        a2a = await client.create_from_url(f"{brain.url}/a2a/agents/{agent['id']}")
        [answer] = [e async for e in a2a.send_message(SendMessageRequest(message=_message("why?")))]
        await a2a.close()
    assert answer.task.status.state == TaskState.TASK_STATE_COMPLETED
    text = get_artifact_text(answer.task.artifacts[0])
    assert text.strip()  # the fake's deterministic words for the prompt
    generate = [body for path, body in brain.fake.bodies if path == "/api/generate"]
    assert generate == [
        {"model": FAKE_MODEL, "prompt": "why?", "stream": False, "system": "be brief"}
    ]


async def test_a_failed_job_is_a_failed_task_with_its_error(brain: Brain) -> None:
    agent = await brain.agent("lost", config={"model": "no-such-model:1b"})
    async with brain.http() as http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=True))
        client = await factory.create_from_url(f"{brain.url}/a2a/agents/{agent['id']}")
        events = [e async for e in client.send_message(SendMessageRequest(message=_message("hi")))]
        await client.close()
    last = events[-1].status_update
    assert last.status.state == TaskState.TASK_STATE_FAILED
    # the model is unknown upstream: a permanent error, the job's last_error is the message
    assert "no-such-model" in get_message_text(last.status.message)
    assert not any(e.HasField("artifact_update") for e in events)


async def test_cancel_a_running_task(brain: Brain) -> None:
    brain.fake.config.response_delay = 30  # the model thinks for long: the task stays working
    agent = await brain.agent("slow", config={"model": FAKE_MODEL})
    async with brain.http() as http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False, polling=True))
        client = await factory.create_from_url(f"{brain.url}/a2a/agents/{agent['id']}")
        [sent] = [e async for e in client.send_message(SendMessageRequest(message=_message("hm")))]
        task_id = sent.task.id
        assert sent.task.status.state in (
            TaskState.TASK_STATE_SUBMITTED,
            TaskState.TASK_STATE_WORKING,
        )
        for _ in range(600):
            current = await client.get_task(GetTaskRequest(id=task_id))
            if current.status.state == TaskState.TASK_STATE_WORKING:
                break
            await asyncio.sleep(0.05)
        assert current.status.state == TaskState.TASK_STATE_WORKING

        # a second client follows the running task; cancelling ends its stream
        follower = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(
            await A2ACardResolver(http, f"{brain.url}/a2a/agents/{agent['id']}").get_agent_card()
        )

        stream = follower.subscribe(SubscribeToTaskRequest(id=task_id))
        first = await anext(stream)  # subscribed: the task as it stands
        assert first.task.id == task_id
        assert first.task.status.state == TaskState.TASK_STATE_WORKING
        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        followed = [e async for e in stream]
        assert followed[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED
        again = await client.get_task(GetTaskRequest(id=task_id))
        assert again.status.state == TaskState.TASK_STATE_CANCELED
        assert not again.artifacts
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=task_id))
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=str(uuid.uuid4())))
        await client.close()
    [job] = await _rows(brain, "SELECT id, status FROM job_queue")
    assert (str(job["id"]), job["status"]) == (task_id, "cancelled")
    kinds = await _rows(
        brain,
        "SELECT message_type FROM a2a_messages WHERE correlation_id = $1 ORDER BY created_at",
        task_id,
    )
    assert [k["message_type"] for k in kinds] == ["request", "cancel"]


async def test_http_errors_and_openapi(brain: Brain) -> None:
    agent = await brain.agent("plain")
    async with brain.http() as http:
        unknown = await http.get(f"/a2a/agents/{uuid.uuid4()}/.well-known/agent-card.json")
        assert unknown.status_code == 404
        assert "no agent with id" in unknown.json()["error"]["message"]
        bad_id = await http.get("/a2a/agents/not-a-uuid/.well-known/agent-card.json")
        assert bad_id.status_code == 422
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "x"}]}
            },
        }
        anonymous = await http.post(
            f"/a2a/agents/{agent['id']}", json=body, headers={"Authorization": ""}
        )
        assert anonymous.status_code == 401
        for bad in ({"method": "SendMessage"}, {**body, "params": [1]}, {**body, "extra": 1}):
            rejected = await http.post(f"/a2a/agents/{agent['id']}", json=bad)
            assert rejected.status_code == 422, rejected.text
            assert rejected.json()["error"]["code"] == "invalid_input"
        # the README's curl examples, as written (JSON-RPC by hand, A2A-Version header)
        readme = await http.post(
            f"/a2a/agents/{agent['id']}",
            json={
                **body,
                "params": {"message": {**body["params"]["message"], "parts": [{"text": "hello"}]}},
            },
            headers={"A2A-Version": "1.0"},
        )
        result = readme.json()["result"]["task"]
        assert result["status"]["state"] == "TASK_STATE_COMPLETED", readme.text
        assert result["artifacts"][0]["parts"][0]["text"] == "plain received: hello"
        resent = await http.post(  # the same messageId again: the same task, no second job
            f"/a2a/agents/{agent['id']}",
            json={
                **body,
                "params": {"message": {**body["params"]["message"], "parts": [{"text": "hello"}]}},
            },
            headers={"A2A-Version": "1.0"},
        )
        assert resent.json()["result"]["task"]["id"] == result["id"]
        task = await http.post(
            f"/a2a/agents/{agent['id']}",
            json={"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": result["id"]}},
            headers={"A2A-Version": "1.0"},
        )
        assert task.json()["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert "/a2a/agents/{agent_id}/.well-known/agent-card.json" in paths
    assert "post" in paths["/a2a/agents/{agent_id}"]
