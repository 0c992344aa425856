"""The A2A request handler: messages become ``a2a.task`` jobs, tasks are read from the jobs.

The SDK's ``DefaultRequestHandler`` runs the agent inside the serving process and keeps the
running task in memory; here the agent runs in the worker, so a task survives an API restart
like every job and any API replica can answer for it. This handler implements the SDK's
``RequestHandler`` directly:

- SendMessage: enqueue the job, record the request, then (unless ``returnImmediately``) wait
  up to ``A2A_SEND_WAIT_SECONDS`` for a final state and return the task;
- SendStreamingMessage / SubscribeToTask: the task, then a status update each time the job's
  state changes and the artifact when it succeeds, until a final state;
- GetTask: the task as it stands; CancelTask: cancels the job (a final task is not cancelable).

Each call's ``ServerCallContext.state`` carries ``resources`` (the API's) and ``agent`` (the
``agents`` row the URL names), put there by the route.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any
from uuid import UUID

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler, validate_request_params
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import apply_history_length, validate_history_length
from cesar_core import a2a
from cesar_core.errors import InvalidJobState, InvalidPayload
from cesar_core.jobs import Job
from google.protobuf.json_format import MessageToDict

from cesar_api.a2a.tasks import TERMINAL_STATES, JobTaskStore, parse_uuid
from cesar_api.database import read, write
from cesar_api.resources import Resources

__all__ = ["JobRequestHandler", "message_text"]

_MESSAGE_NS = uuid.UUID("a6b1c0de-3f0e-4e7a-8d2c-5b9e1f4a7c31")
MAX_TEXT = 100_000


def message_text(message: Message) -> str:
    """The text an agent reads: text parts, then data parts as JSON."""
    texts = [p.text for p in message.parts if p.HasField("text") and p.text.strip()]
    data = [
        json.dumps(MessageToDict(p.data), sort_keys=True)
        for p in message.parts
        if p.HasField("data")
    ]
    return "\n".join(texts + data)


class _Scope:
    def __init__(self, context: ServerCallContext) -> None:
        self.resources: Resources = context.state["resources"]
        self.agent: dict[str, Any] = context.state["agent"]
        self.agent_id: UUID = self.agent["id"]
        self.store = JobTaskStore(self.resources.db(), self.resources.queue())


class JobRequestHandler(RequestHandler):
    """Serves one agent's A2A methods per call (the agent comes with the call's context)."""

    # -- tasks ---------------------------------------------------------------------------------

    async def _job(self, scope: _Scope, task_id: str) -> Job:
        job = await scope.store.job(task_id, scope.agent_id)
        if job is None:
            raise TaskNotFoundError(message=f"no task {task_id} for agent {scope.agent['name']}")
        return job

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        validate_history_length(params)
        scope = _Scope(context)
        task = await scope.store.task(await self._job(scope, params.id))
        return apply_history_length(task, params)

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        return await _Scope(context).store.list(params, context)

    @validate_request_params
    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        scope = _Scope(context)
        job = await self._job(scope, params.id)
        try:
            job = await scope.resources.queue().cancel(job.id)
        except InvalidJobState as exc:
            raise TaskNotCancelableError(message=f"task {params.id}: {exc}") from exc
        context_id = parse_uuid(str(job.payload.get("context_id")))
        if context_id is not None:
            await write(
                scope.resources.db(),
                lambda conn: a2a.record_message(
                    conn,
                    message_id=uuid.uuid5(_MESSAGE_NS, f"cancel:{job.id}"),
                    conversation_id=context_id,
                    agent_id=scope.agent_id,
                    task_id=job.id,
                    message_type="cancel",
                    content={"reason": "CancelTask"},
                    from_agent=False,
                ),
            )
        return await scope.store.task(job)

    # -- messages ------------------------------------------------------------------------------

    async def _submit(self, scope: _Scope, params: SendMessageRequest) -> Job:
        """Enqueue the job for a message (the same message again: the same task)."""
        validate_history_length(params.configuration)
        message = params.message
        if message.task_id:
            await self._job(scope, message.task_id)
            raise UnsupportedOperationError(
                message=f"task {message.task_id} takes no further messages; send a new "
                "message with the same contextId to continue the conversation"
            )
        context_id = parse_uuid(message.context_id) if message.context_id else uuid.uuid4()
        if context_id is None:
            raise InvalidParamsError(message="contextId must be a UUID (as this server gives)")
        text = message_text(message)
        if not text:
            raise InvalidParamsError(message="the message has no text or data part to answer")
        if len(text) > MAX_TEXT:
            raise InvalidParamsError(message=f"the message's text exceeds {MAX_TEXT} characters")
        # the client's message id, per agent: a resent message finds its task
        row_id = uuid.uuid5(_MESSAGE_NS, f"{scope.agent_id}:{message.message_id}")
        db, queue = scope.resources.db(), scope.resources.queue()
        known = await read(db, lambda conn: a2a.find_message(conn, row_id))
        known_job = parse_uuid(str(known["correlation_id"])) if known else None
        if known_job is not None:
            return await queue.get(known_job)
        stored = Message()
        stored.CopyFrom(message)
        stored.context_id = str(context_id)
        body = MessageToDict(stored)
        payload = {
            "agent_id": str(scope.agent_id),
            "context_id": str(context_id),
            "message_id": str(row_id),
            "text": text,
            "message": body,
        }
        try:
            job = await queue.enqueue(a2a.A2A_TASK_JOB, payload, unique_key=f"a2a:{row_id}")
        except InvalidPayload as exc:
            raise InvalidParamsError(message=str(exc)) from exc
        await write(
            db,
            lambda conn: a2a.record_message(
                conn,
                message_id=row_id,
                conversation_id=context_id,
                agent_id=scope.agent_id,
                task_id=job.id,
                message_type="request",
                content={"message": {**body, "taskId": str(job.id)}},
                from_agent=False,
                topic=text[:200],
            ),
        )
        return job

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        scope = _Scope(context)
        job = await self._submit(scope, params)
        settings = scope.resources.settings
        if not params.configuration.return_immediately:
            deadline = time.monotonic() + settings.a2a_send_wait_seconds
            while not job.is_final and time.monotonic() < deadline:
                await asyncio.sleep(settings.a2a_poll_seconds)
                job = await scope.resources.queue().get(job.id)
        return apply_history_length(await scope.store.task(job), params.configuration)

    async def _follow(self, scope: _Scope, job: Job) -> AsyncGenerator[Event, None]:
        """The task now, then its changes until it is final (or the stream's time is up)."""
        settings = scope.resources.settings
        task = await scope.store.task(job)
        yield task
        state = task.status.state
        deadline = time.monotonic() + settings.a2a_stream_max_seconds
        while state not in TERMINAL_STATES and time.monotonic() < deadline:
            await asyncio.sleep(settings.a2a_poll_seconds)
            job = await scope.resources.queue().get(job.id)
            task = await scope.store.task(job)
            if task.status.state == state:
                continue
            state = task.status.state
            for artifact in task.artifacts:
                yield TaskArtifactUpdateEvent(
                    task_id=task.id, context_id=task.context_id, artifact=artifact, last_chunk=True
                )
            yield TaskStatusUpdateEvent(
                task_id=task.id, context_id=task.context_id, status=task.status
            )

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        scope = _Scope(context)
        job = await self._submit(scope, params)
        async for event in self._follow(scope, job):
            yield event

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        scope = _Scope(context)
        job = await self._job(scope, params.id)
        if job.is_final:
            raise UnsupportedOperationError(
                message=f"task {params.id} is final ({job.status.value}); GetTask returns it"
            )
        async for event in self._follow(scope, job):
            yield event

    # -- not offered ---------------------------------------------------------------------------

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise UnsupportedOperationError(message="agents here have no extended card")
