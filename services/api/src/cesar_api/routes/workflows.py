"""/api/v1/workflows: versioned templates, execution (a ``workflow.execute`` job), executions."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from cesar_core.errors import CesarError
from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cesar_api.database import read, write
from cesar_api.deps import DbDep, QueueDep, ReadKey, WriteKey
from cesar_api.errors import Conflict, NotFound
from cesar_api.pagination import Page, decode_cursor, next_cursor
from cesar_api.repositories import workflows as repo
from cesar_api.routes.jobs import JobOut
from cesar_api.schemas import Count, Cursor, Flag, Limit, Name, StrictModel

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])
log = logging.getLogger(__name__)

WORKFLOW_JOB = "workflow.execute"
DONE_STEP_STATES = {"succeeded", "completed", "done", "skipped"}
ExecutionStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]


class Step(BaseModel):
    """One step; ``name`` is required and unique, every other key is kept as given."""

    model_config = ConfigDict(extra="allow")
    name: Name


class Definition(BaseModel):
    model_config = ConfigDict(extra="allow")
    steps: list[Step] = Field(min_length=1, max_length=200)

    @field_validator("steps")
    @classmethod
    def _unique_names(cls, steps: list[Step]) -> list[Step]:
        seen: set[str] = set()
        for index, step in enumerate(steps):
            if step.name in seen:
                raise ValueError(f"steps[{index}].name {step.name!r} is used twice")
            seen.add(step.name)
        return steps


class TemplateIn(StrictModel):
    name: Name
    description: str | None = Field(default=None, max_length=4000)
    definition: Definition
    is_active: Flag = True
    created_by: str | None = Field(default=None, max_length=200)


class VersionIn(StrictModel):
    description: str | None = Field(default=None, max_length=4000)
    definition: Definition
    is_active: Flag = True
    created_by: str | None = Field(default=None, max_length=200)


class TemplateOut(BaseModel):
    id: UUID
    name: str
    version: int
    description: str | None
    definition: dict[str, Any]
    is_active: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class TemplatePage(Page):
    items: list[TemplateOut]


class ExecuteIn(StrictModel):
    input: dict[str, Any] = Field(default_factory=dict)
    triggered_by: str | None = Field(default=None, max_length=200)
    max_attempts: Annotated[Count, Field(ge=1, le=100)] | None = None
    unique_key: str | None = Field(default=None, min_length=1, max_length=200)


class Progress(BaseModel):
    total_steps: int
    completed_steps: int
    current_step: int
    percent: float


class ExecutionOut(BaseModel):
    id: UUID
    template_id: UUID | None
    job_id: UUID | None
    status: str
    input: dict[str, Any]
    output: Any
    steps: list[Any]
    current_step: int
    error: str | None
    triggered_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime
    progress: Progress

    @classmethod
    def of(cls, row: dict[str, Any]) -> ExecutionOut:
        steps = row.get("steps") or []
        steps = steps if isinstance(steps, list) else []
        done = sum(1 for s in steps if isinstance(s, dict) and s.get("status") in DONE_STEP_STATES)
        if row["status"] == "succeeded":
            done = len(steps)
        total = len(steps)
        progress = Progress(
            total_steps=total,
            completed_steps=done,
            current_step=row["current_step"],
            percent=round(100.0 * done / total, 1) if total else 0.0,
        )
        return cls.model_validate({**row, "steps": steps, "progress": progress})


class ExecutionPage(Page):
    items: list[ExecutionOut]


class ExecuteOut(BaseModel):
    execution: ExecutionOut
    job: JobOut


def _template_values(body: TemplateIn | VersionIn, name: str) -> dict[str, Any]:
    values = body.model_dump()
    values["name"] = name
    return values


@router.post("/templates", status_code=status.HTTP_201_CREATED, response_model=TemplateOut)
async def create_template(body: TemplateIn, db: DbDep, _key: WriteKey) -> TemplateOut:
    """Version 1 of a new template; 409 when the name exists (add a version instead)."""
    values = _template_values(body, body.name)

    async def work(conn: Any) -> dict[str, Any]:
        if await repo.latest_version(conn, body.name) is not None:
            raise Conflict(
                f"name: a template named {body.name!r} exists; "
                f"POST /api/v1/workflows/templates/{body.name}/versions adds a version"
            )
        return await repo.create_template(conn, values, 1)

    return TemplateOut.model_validate(await write(db, work))


@router.post(
    "/templates/{name}/versions", status_code=status.HTTP_201_CREATED, response_model=TemplateOut
)
async def add_version(
    name: Annotated[str, Path(min_length=1, max_length=200)],
    body: VersionIn,
    db: DbDep,
    _key: WriteKey,
) -> TemplateOut:
    """The next version of an existing template (404 when there is none)."""
    values = _template_values(body, name)

    async def work(conn: Any) -> dict[str, Any]:
        latest = await repo.latest_version(conn, name)
        if latest is None:
            raise NotFound(f"no template named {name!r}")
        return await repo.create_template(conn, values, latest + 1)

    return TemplateOut.model_validate(await write(db, work))


@router.get("/templates", response_model=TemplatePage)
async def list_templates(
    db: DbDep,
    _key: ReadKey,
    name: Annotated[str | None, Query(max_length=200)] = None,
    is_active: bool | None = None,
    all_versions: Annotated[bool, Query(description="every version, not only the newest")] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> TemplatePage:
    before = decode_cursor(cursor)
    rows = await read(
        db,
        lambda conn: repo.list_templates(
            conn,
            name=name,
            is_active=is_active,
            all_versions=all_versions,
            before=before,
            limit=limit,
        ),
    )
    return TemplatePage(
        items=[TemplateOut.model_validate(r) for r in rows], next_cursor=next_cursor(rows, limit)
    )


@router.get("/templates/{template_id}", response_model=TemplateOut)
async def get_template(template_id: UUID, db: DbDep, _key: ReadKey) -> TemplateOut:
    row = await read(db, lambda conn: repo.get_template(conn, template_id))
    if not row:
        raise NotFound(f"no workflow template with id {template_id}")
    return TemplateOut.model_validate(row)


@router.post(
    "/templates/{template_id}/execute",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExecuteOut,
)
async def execute_template(
    template_id: UUID, body: ExecuteIn, db: DbDep, queue: QueueDep, _key: WriteKey
) -> ExecuteOut:
    """Create a ``workflow_executions`` row and enqueue ``workflow.execute`` for it."""
    execution_id = uuid4()
    payload = {
        "template_id": str(template_id),
        "input": body.input,
        "execution_id": str(execution_id),
        "triggered_by": body.triggered_by,
    }
    queue.registry.validate(WORKFLOW_JOB, payload)  # fail before writing anything

    async def create(conn: Any) -> dict[str, Any]:
        template = await repo.get_template(conn, template_id)
        if not template:
            raise NotFound(f"no workflow template with id {template_id}")
        if not template["is_active"]:
            raise Conflict(f"workflow template {template_id} is not active")
        steps = [
            {"name": s.get("name"), "status": "pending"}
            for s in template["definition"].get("steps", [])
            if isinstance(s, dict)
        ]
        return await repo.create_execution(
            conn, execution_id, template_id, body.input, steps, body.triggered_by
        )

    await write(db, create)
    try:
        job = await queue.enqueue(
            WORKFLOW_JOB, payload, max_attempts=body.max_attempts, unique_key=body.unique_key
        )
    except CesarError as exc:
        message = f"could not enqueue: {exc}"
        try:
            await write(db, lambda conn: repo.fail_execution(conn, execution_id, message))
        except Exception as cleanup:  # the original error is what the caller needs
            log.warning("could not mark execution %s failed: %s", execution_id, cleanup)
        raise
    existing_id = job.payload.get("execution_id")
    if existing_id and existing_id != str(execution_id):
        # the unique_key matched an active job: that job's execution is the answer
        async def swap(conn: Any) -> dict[str, Any]:
            await repo.delete_pending_execution(conn, execution_id)
            return await repo.get_execution(conn, UUID(existing_id)) or {}

        row = await write(db, swap)
        if not row:
            raise Conflict(f"unique_key {body.unique_key!r} is held by job {job.id}")
    else:
        row = await write(db, lambda conn: repo.set_execution_job(conn, execution_id, job.id))
    return ExecuteOut(execution=ExecutionOut.of(row), job=JobOut.of(job))


@router.get("/executions", response_model=ExecutionPage)
async def list_executions(
    db: DbDep,
    _key: ReadKey,
    template_id: UUID | None = None,
    status: ExecutionStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ExecutionPage:
    before = decode_cursor(cursor)
    rows = await read(
        db,
        lambda conn: repo.list_executions(
            conn, template_id=template_id, status=status, before=before, limit=limit
        ),
    )
    return ExecutionPage(
        items=[ExecutionOut.of(r) for r in rows], next_cursor=next_cursor(rows, limit)
    )


@router.get("/executions/{execution_id}", response_model=ExecutionOut)
async def get_execution(execution_id: UUID, db: DbDep, _key: ReadKey) -> ExecutionOut:
    """One execution with its steps and progress."""
    row = await read(db, lambda conn: repo.get_execution(conn, execution_id))
    if not row:
        raise NotFound(f"no workflow execution with id {execution_id}")
    return ExecutionOut.of(row)
