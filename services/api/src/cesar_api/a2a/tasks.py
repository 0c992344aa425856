"""A2A tasks read from the database: the job is the truth, the task is a view of it.

:class:`JobTaskStore` implements the SDK's ``TaskStore`` for reads: a task is its ``a2a.task``
job (state), the job's result (artifacts) and the ``a2a_messages`` of the task (history).
It refuses writes: a task's state changes only through its job (the worker runs it, the
queue cancels it), so nothing can make the two disagree.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from a2a.server.context import ServerCallContext
from a2a.server.tasks.task_store import TaskStore
from a2a.types.a2a_pb2 import (
    Artifact,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.errors import UnsupportedOperationError
from cesar_core import a2a
from cesar_core.db import Database
from cesar_core.errors import JobNotFound
from cesar_core.jobs import Job, JobQueue, JobStatus
from google.protobuf.json_format import ParseDict, ParseError

__all__ = ["TERMINAL_STATES", "JobTaskStore", "parse_uuid", "task_from"]

STATE_OF_JOB: dict[JobStatus, int] = {
    JobStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    JobStatus.QUEUED: TaskState.TASK_STATE_SUBMITTED,
    JobStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    # between attempts the agent is still working on it, as far as the client can tell
    JobStatus.RETRYING: TaskState.TASK_STATE_WORKING,
    JobStatus.SUCCEEDED: TaskState.TASK_STATE_COMPLETED,
    JobStatus.FAILED: TaskState.TASK_STATE_FAILED,
    JobStatus.CANCELLED: TaskState.TASK_STATE_CANCELED,
}
TERMINAL_STATES = frozenset(
    {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED}
)


def parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except (ValueError, TypeError):
        return None


def _message(data: Any) -> Message | None:
    if not isinstance(data, dict):
        return None
    message = Message()
    try:
        ParseDict(data, message, ignore_unknown_fields=True)
    except ParseError:
        return None
    return message


def task_from(job: Job, messages: list[a2a.TaskMessage]) -> Task:
    """The A2A view of an ``a2a.task`` job and its stored messages."""
    context_id = str(job.payload.get("context_id", ""))
    task = Task(id=str(job.id), context_id=context_id)
    task.status.CopyFrom(TaskStatus(state=STATE_OF_JOB[job.status]))  # type: ignore[arg-type]
    task.status.timestamp.FromDatetime(job.updated_at)
    if job.status is JobStatus.FAILED and job.last_error:
        task.status.message.CopyFrom(
            Message(
                message_id=f"{job.id}:error",
                context_id=context_id,
                task_id=str(job.id),
                role=Role.ROLE_AGENT,
                parts=[Part(text=job.last_error)],
            )
        )
    history = [m for m in (_message(x.content.get("message")) for x in messages) if m]
    if not history:  # not recorded yet (the job records it too): the payload has it
        first = _message(job.payload.get("message"))
        if first is not None:
            first.task_id = str(job.id)
            history.append(first)
    task.history.extend(history)
    result = job.result if isinstance(job.result, dict) else {}
    if job.status is JobStatus.SUCCEEDED and isinstance(result.get("artifact"), dict):
        task.artifacts.append(ParseDict(result["artifact"], Artifact(), ignore_unknown_fields=True))
    task.metadata.update({"job_id": str(job.id), "job_status": job.status.value})
    return task


class JobTaskStore(TaskStore):
    """The tasks of one agent (``context.state["agent"]``), read from the database."""

    def __init__(self, db: Database, queue: JobQueue) -> None:
        self.db = db
        self.queue = queue

    async def job(self, task_id: str, agent_id: UUID) -> Job | None:
        """The job behind a task of this agent (None: no such task for this agent)."""
        job_id = parse_uuid(task_id)
        if job_id is None:
            return None
        try:
            job = await self.queue.get(job_id)
        except JobNotFound:
            return None
        if job.job_type != a2a.A2A_TASK_JOB or job.payload.get("agent_id") != str(agent_id):
            return None
        return job

    async def task(self, job: Job) -> Task:
        async with self.db.connection() as conn:
            messages = await a2a.task_messages(conn, job.id)
        return task_from(job, messages)

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        job = await self.job(task_id, context.state["agent"]["id"])
        return None if job is None else await self.task(job)

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        raise UnsupportedOperationError(
            message="ListTasks is not supported here; list an agent's tasks with "
            "GET /api/v1/jobs?job_type=a2a.task or on the dashboard's Agents page"
        )

    async def save(self, task: Task, context: ServerCallContext) -> None:
        raise UnsupportedOperationError(
            message="a task's state follows its job in job_queue; it cannot be saved directly"
        )

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        raise UnsupportedOperationError(message="tasks are not deleted through A2A")
