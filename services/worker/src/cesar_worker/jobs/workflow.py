"""``workflow.execute``: run the steps of a ``workflow_templates`` definition in order.

Definition: ``{"steps": [{"name": "...", "kind": "llm.generate", "model": "...",
"prompt": "..."}, {"kind": "agent.event", "event_type": "...", ...}, {"kind": "delay",
"seconds": 1}, {"kind": "enqueue", "job_type": "...", "payload": {...}}, {"kind":
"graph.extract", "model": "...", "text": "..."}]}`` (see :mod:`cesar_worker.jobs.graph_extract`).
Strings may refer to earlier results: ``{{input.topic}}``, ``{{steps.<name>.response}}``.

Limits (so one template cannot flood the queue or the worker's memory):

* A workflow started by another workflow's ``enqueue`` step carries ``depth`` = its parent's
  plus one (set by the worker, whatever the step's payload says). A step that would start a
  workflow deeper than ``WORKFLOW_MAX_DEPTH`` (default 5) fails the workflow with an error
  naming the limit, and a job whose payload is already deeper is refused. A template that
  enqueues itself therefore stops after ``WORKFLOW_MAX_DEPTH`` levels; k such steps per template
  can start at most k + k**2 + ... + k**WORKFLOW_MAX_DEPTH workflows.
* A step's text after substitution is at most ``WORKFLOW_MAX_RENDERED_BYTES`` (UTF-8, default
  1 MiB, all strings of the step together); substitution stops as soon as the budget is spent,
  so repeated ``{{input.x}}`` never builds the oversized text.

Progress and output are recorded in ``workflow_executions`` after every step. Idempotent: a
re-run (at-least-once delivery) finds the execution by id or job id and resumes after the last
step recorded as done; agent events have ids derived from (execution, step) and enqueued jobs
a unique key per (execution, step), so repeating a step does not repeat its effect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
import httpx
from cesar_core import events
from cesar_core.errors import CesarError, InvalidPayload, RedisUnavailable, UnknownJobType
from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import WorkflowExecutePayload
from cesar_core.jobs.registry import JobContext, JobType, PermanentJobError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cesar_worker.config import WorkerConfig
from cesar_worker.jobs.graph_extract import GraphExtractStep, run_graph_extract

__all__ = ["JOB", "WorkflowDefinition"]

log = logging.getLogger(__name__)
_EVENT_NS = uuid.UUID("6c1f6f1e-8a43-4f0e-9f0a-3c7c2b5d9e01")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
DEFAULT_MAX_RENDERED_BYTES = 1_048_576


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)


class LlmGenerateStep(_Step):
    kind: Literal["llm.generate"]
    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    system: str | None = None
    options: dict[str, Any] | None = None


class AgentEventStep(_Step):
    kind: Literal["agent.event"]
    event_type: str = Field(min_length=1, max_length=200)
    agent_id: UUID | None = None
    agent_name: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["debug", "info", "warning", "error", "critical"] = "info"


class DelayStep(_Step):
    kind: Literal["delay"]
    seconds: float = Field(ge=0, le=3600)


class EnqueueStep(_Step):
    kind: Literal["enqueue"]
    job_type: str = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict)


Step = Annotated[
    LlmGenerateStep | AgentEventStep | DelayStep | EnqueueStep | GraphExtractStep,
    Field(discriminator="kind"),
]


class WorkflowDefinition(BaseModel):
    steps: list[Step] = Field(min_length=1)


SELECT_TEMPLATE_BY_ID = """
SELECT id, name, version, definition, is_active FROM workflow_templates WHERE id = $1
"""
SELECT_TEMPLATE_BY_NAME = """
SELECT id, name, version, definition, is_active FROM workflow_templates
WHERE name = $1 AND ($2::INT8 IS NULL OR version = $2) AND ($2::INT8 IS NOT NULL OR is_active)
ORDER BY version DESC
LIMIT 1
"""
SELECT_EXECUTION_BY_ID = """
SELECT id, status, steps, current_step, output FROM workflow_executions WHERE id = $1
"""
SELECT_EXECUTION_BY_JOB = """
SELECT id, status, steps, current_step, output FROM workflow_executions
WHERE job_id = $1 ORDER BY created_at LIMIT 1
"""
INSERT_EXECUTION = """
INSERT INTO workflow_executions (id, template_id, job_id, status, input, steps, current_step,
                                 triggered_by, started_at, created_at, updated_at)
VALUES ($1, $2, $3, 'running', CAST($4 AS JSONB), CAST('[]' AS JSONB), 0, $5, $6, $6, $6)
ON CONFLICT (id) DO NOTHING
"""
UPDATE_PROGRESS = """
UPDATE workflow_executions
SET status = $2, steps = CAST($3 AS JSONB), current_step = $4, error = $5, updated_at = $6,
    job_id = COALESCE(job_id, $7), started_at = COALESCE(started_at, $6)
WHERE id = $1
"""
FINISH_EXECUTION = """
UPDATE workflow_executions
SET status = $2, output = CAST($3 AS JSONB), error = $4, finished_at = $5, updated_at = $5
WHERE id = $1
"""
SELECT_AGENT_BY_NAME = "SELECT id FROM agents WHERE name = $1"
SELECT_ENQUEUED = """
SELECT id, job_type FROM job_queue WHERE job_type = $1 AND unique_key = $2
ORDER BY created_at LIMIT 1
"""
INSERT_EVENT = """
INSERT INTO agent_events (id, agent_id, event_type, payload, severity, source, correlation_id,
                          occurred_at, created_at)
VALUES ($1, $2, $3, CAST($4 AS JSONB), $5, 'workflow', $6, $7, $7)
ON CONFLICT (id) DO NOTHING
"""


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class _Budget:
    """Bytes of rendered text a step may still produce."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, text: str) -> None:
        self.used += len(text.encode("utf-8", "surrogatepass"))
        if self.used > self.limit:
            raise PermanentJobError(
                f"the step's rendered text exceeds {self.limit} bytes "
                "(WORKFLOW_MAX_RENDERED_BYTES); refer to large values fewer times"
            )


def render(value: Any, scope: dict[str, Any], max_bytes: int = DEFAULT_MAX_RENDERED_BYTES) -> Any:
    """Replace ``{{path.to.value}}`` in strings (recursively in dicts and lists).

    The strings' text after substitution may total at most ``max_bytes``; the check runs
    before each substitution is joined in, so an oversized result is never built.
    """
    return _render(value, scope, _Budget(max_bytes))


def _render(value: Any, scope: dict[str, Any], budget: _Budget) -> Any:
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            current: Any = scope
            for part in match.group(1).split("."):
                if isinstance(current, dict) and part in current:
                    current = current[part]
                else:
                    raise PermanentJobError(f"template refers to unknown value {match.group(1)!r}")
            text = current if isinstance(current, str) else json.dumps(current, default=str)
            budget.spend(text)
            return text

        budget.spend(value)  # the literal text (placeholders included: an upper bound)
        return _PLACEHOLDER.sub(lookup, value)
    if isinstance(value, dict):
        return {k: _render(v, scope, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, scope, budget) for v in value]
    return value


async def _load_template(ctx: JobContext, payload: WorkflowExecutePayload) -> asyncpg.Record:
    async with ctx.db.connection() as conn:
        if payload.template_id is not None:
            row = await conn.fetchrow(SELECT_TEMPLATE_BY_ID, payload.template_id)
        else:
            row = await conn.fetchrow(
                SELECT_TEMPLATE_BY_NAME, payload.template_name, payload.version
            )
    if row is None:
        which = payload.template_id or f"{payload.template_name} v{payload.version or 'latest'}"
        raise PermanentJobError(f"workflow template {which} not found (or not active)")
    return row


def _definition(template: asyncpg.Record) -> WorkflowDefinition:
    try:
        return WorkflowDefinition.model_validate(_loads(template["definition"]))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise PermanentJobError(
            f"workflow template {template['name']} is invalid: {problems}"
        ) from exc


async def _execution(
    ctx: JobContext, payload: WorkflowExecutePayload, template_id: UUID, now: datetime
) -> asyncpg.Record:
    execution_id = payload.execution_id

    async def work(conn: asyncpg.Connection) -> asyncpg.Record:
        if execution_id is not None:
            await conn.execute(
                INSERT_EXECUTION,
                execution_id,
                template_id,
                ctx.job.id,
                json.dumps(payload.input),
                payload.triggered_by,
                now,
            )
            row = await conn.fetchrow(SELECT_EXECUTION_BY_ID, execution_id)
        else:
            row = await conn.fetchrow(SELECT_EXECUTION_BY_JOB, ctx.job.id)
            if row is None:
                new_id = uuid.uuid4()
                await conn.execute(
                    INSERT_EXECUTION,
                    new_id,
                    template_id,
                    ctx.job.id,
                    json.dumps(payload.input),
                    payload.triggered_by,
                    now,
                )
                row = await conn.fetchrow(SELECT_EXECUTION_BY_ID, new_id)
        assert row is not None
        return row

    return await ctx.db.transaction(work)


async def _llm_generate(ctx: JobContext, step: LlmGenerateStep) -> dict[str, Any]:
    client = ctx.resources.get("ollama")
    if not isinstance(client, httpx.AsyncClient):
        raise CesarError("no Ollama client configured for this worker")
    body: dict[str, Any] = {"model": step.model, "prompt": step.prompt, "stream": False}
    if step.system:
        body["system"] = step.system
    if step.options:
        body["options"] = step.options
    try:
        response = await client.post("/api/generate", json=body)
    except httpx.HTTPError as exc:
        raise CesarError(f"Ollama unreachable: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        detail = response.text[:300]
        message = f"Ollama answered {response.status_code}: {detail}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise PermanentJobError(message)
        raise CesarError(message)
    data = response.json()
    return {
        "response": data.get("response", ""),
        "model": data.get("model", step.model),
        "prompt_eval_count": data.get("prompt_eval_count"),
        "eval_count": data.get("eval_count"),
        "total_duration": data.get("total_duration"),
    }


async def _agent_event(
    ctx: JobContext, step: AgentEventStep, execution_id: UUID, index: int
) -> dict[str, Any]:
    event_id = uuid.uuid5(_EVENT_NS, f"{execution_id}:{index}")
    now = ctx.clock()
    async with ctx.db.connection() as conn:
        agent_id = step.agent_id
        if agent_id is None and step.agent_name:
            agent_id = await conn.fetchval(SELECT_AGENT_BY_NAME, step.agent_name)
            if agent_id is None:
                raise PermanentJobError(f"no agent named {step.agent_name!r}")
    await ctx.db.transaction(
        lambda conn: conn.execute(
            INSERT_EVENT,
            event_id,
            agent_id,
            step.event_type,
            json.dumps(step.payload),
            step.severity,
            str(execution_id),
            now,
        )
    )
    event = {
        "id": str(event_id),
        "agent_id": str(agent_id) if agent_id else None,
        "event_type": step.event_type,
        "payload": step.payload,
        "severity": step.severity,
        "source": "workflow",
        "correlation_id": str(execution_id),
        "occurred_at": now.isoformat(),
        "created_at": now.isoformat(),
    }
    try:
        await events.publish_events(ctx.redis, [event])
    except RedisUnavailable as exc:  # stored is what counts; the live stream is best effort
        log.warning("agent event %s stored but not published: %s", event_id, exc)
    return {"event_id": str(event_id)}


def _child_payload(ctx: JobContext, step: EnqueueStep, depth: int) -> dict[str, Any]:
    """The step's payload; a workflow it starts is one level deeper, whatever the step says."""
    if step.job_type != builtin.WORKFLOW_EXECUTE.name:
        return step.payload
    limit = _config(ctx).workflow_max_depth
    if depth + 1 > limit:
        raise PermanentJobError(
            f"workflow nesting limit reached: this workflow is at depth {depth} and "
            f"WORKFLOW_MAX_DEPTH is {limit}, so it may not start another workflow"
        )
    return {**step.payload, "depth": depth + 1}


async def _enqueue(
    ctx: JobContext, step: EnqueueStep, execution_id: UUID, index: int, depth: int
) -> dict[str, Any]:
    unique_key = f"workflow:{execution_id}:{index}"
    # The unique_key dedups only while that job is active: a re-run after it finished (a worker
    # killed before recording this step) must find it, not enqueue it again.
    async with ctx.db.connection() as conn:
        earlier = await conn.fetchrow(SELECT_ENQUEUED, step.job_type, unique_key)
    if earlier is not None:
        return {"job_id": str(earlier["id"]), "job_type": earlier["job_type"]}
    payload = _child_payload(ctx, step, depth)
    try:
        job = await ctx.queue.enqueue(step.job_type, payload, unique_key=unique_key)
    except (UnknownJobType, InvalidPayload) as exc:
        raise PermanentJobError(str(exc)) from exc
    return {"job_id": str(job.id), "job_type": job.job_type}


async def _run_step(
    ctx: JobContext, step: Any, execution_id: UUID, index: int, depth: int
) -> dict[str, Any]:
    if isinstance(step, LlmGenerateStep):
        return await _llm_generate(ctx, step)
    if isinstance(step, AgentEventStep):
        return await _agent_event(ctx, step, execution_id, index)
    if isinstance(step, EnqueueStep):
        return await _enqueue(ctx, step, execution_id, index, depth)
    if isinstance(step, GraphExtractStep):
        return await run_graph_extract(ctx, step)
    await asyncio.sleep(step.seconds)
    return {"slept": step.seconds}


async def _finish(
    ctx: JobContext, execution_id: UUID, status: str, output: str | None, error: str | None
) -> None:
    async def work(conn: asyncpg.Connection) -> None:
        await conn.execute(FINISH_EXECUTION, execution_id, status, output, error, ctx.clock())

    await ctx.db.transaction(work)


def _config(ctx: JobContext) -> WorkerConfig:
    config = ctx.settings
    assert isinstance(config, WorkerConfig)
    return config


async def execute(ctx: JobContext, payload: WorkflowExecutePayload) -> dict[str, Any]:
    config = _config(ctx)
    if payload.depth > config.workflow_max_depth:
        raise PermanentJobError(
            f"workflow depth {payload.depth} is beyond WORKFLOW_MAX_DEPTH "
            f"({config.workflow_max_depth})"
        )
    template = await _load_template(ctx, payload)
    definition = _definition(template)
    execution = await _execution(ctx, payload, template["id"], ctx.clock())
    execution_id: UUID = execution["id"]
    if execution["status"] == "succeeded":
        return {"execution_id": str(execution_id), "output": _loads(execution["output"])}
    if execution["status"] == "cancelled":
        raise PermanentJobError(f"workflow execution {execution_id} was cancelled")
    records: list[dict[str, Any]] = list(_loads(execution["steps"]) or [])
    done = [r for r in records if r.get("status") == "succeeded"]
    outputs: dict[str, Any] = {r["name"]: r.get("output") for r in done}
    start = min(int(execution["current_step"]), len(done))
    records = done[:start]
    scope = {"input": payload.input, "steps": outputs}

    async def save(status: str, error: str | None) -> None:
        await ctx.db.transaction(
            lambda conn: conn.execute(
                UPDATE_PROGRESS,
                execution_id,
                status,
                json.dumps(records, default=str),
                len([r for r in records if r["status"] == "succeeded"]),
                error,
                ctx.clock(),
                ctx.job.id,
            )
        )

    await save("running", None)
    for index in range(start, len(definition.steps)):
        raw = definition.steps[index]
        name = raw.name or f"step{index + 1}"
        started = ctx.clock()
        try:
            rendered = render(raw.model_dump(), scope, config.workflow_max_rendered_bytes)
            step = type(raw).model_validate(rendered)
            output = await _run_step(ctx, step, execution_id, index, payload.depth)
        except Exception as exc:
            final = isinstance(exc, PermanentJobError) or ctx.job.attempts >= ctx.job.max_attempts
            records.append(
                {
                    "index": index,
                    "name": name,
                    "kind": raw.kind,
                    "status": "failed",
                    "error": f"{type(exc).__name__}: {exc}"[:2000],
                    "started_at": started.isoformat(),
                    "finished_at": ctx.clock().isoformat(),
                    "attempt": ctx.job.attempts,
                }
            )
            await save("failed" if final else "running", f"step {name}: {exc}"[:2000])
            records.pop()
            if final:
                message = f"step {name}: {exc}"[:2000]
                await _finish(ctx, execution_id, "failed", None, message)
            raise
        outputs[name] = output
        records.append(
            {
                "index": index,
                "name": name,
                "kind": raw.kind,
                "status": "succeeded",
                "output": output,
                "started_at": started.isoformat(),
                "finished_at": ctx.clock().isoformat(),
            }
        )
        await save("running", None)
    last_name = definition.steps[-1].name or f"step{len(definition.steps)}"
    result = {"steps": outputs, "last": outputs.get(last_name)}
    await _finish(ctx, execution_id, "succeeded", json.dumps(result, default=str), None)
    return {"execution_id": str(execution_id), "output": result}


JOB = JobType(builtin.WORKFLOW_EXECUTE, execute)
