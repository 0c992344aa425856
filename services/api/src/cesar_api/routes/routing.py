"""/api/v1/routing: rules, decisions (which agent gets a task), and their log.

A decision tries the active rules in order (:mod:`cesar_api.routing_policy`). The first rule
that matches decides: ``drop`` and ``escalate`` end there; ``route`` and ``broadcast`` take the
available agents (not ``offline``/``error``) that have the capability asked for (by the request
and by the rule), of the rule's agent type, or the rule's one target agent, ranked by
reputation (``agent_reputation.score``, 0.5 when none yet), then load (tasks ``assigned`` or
``running``), then name. A rule with no such agent passes to the next rule; when none is left
the outcome is ``no_match``. ``route`` picks the first, and assigns the task when one is given.
Every decision is a ``routing_decisions`` row (kept 14 days).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, status
from pydantic import BaseModel, Field, field_validator

from cesar_api.database import read, write
from cesar_api.deps import DbDep, ReadKey, WriteKey
from cesar_api.errors import NotFound
from cesar_api.pagination import Page, decode_cursor, next_cursor
from cesar_api.repositories import routing as repo
from cesar_api.routing_policy import condition_problem, rule_matches
from cesar_api.schemas import Cursor, Flag, Limit, Name, StrictModel

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/routing", tags=["routing"])

Action = Literal["route", "broadcast", "escalate", "drop"]
Outcome = Literal["routed", "broadcast", "escalated", "dropped", "no_match"]
Capability = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
CANDIDATES_MAX = 50
_OUTCOME_OF = {"drop": "dropped", "escalate": "escalated"}


class RuleIn(StrictModel):
    name: Name
    description: str | None = Field(default=None, max_length=4000)
    priority: int = Field(default=100, ge=0, le=1_000_000_000, strict=True)
    conditions: dict[str, Any] = Field(
        default_factory=dict,
        description="every key must match: request_type, capability, agent_type, or a key of "
        "the request object; a list matches any of its items",
    )
    action: Action = "route"
    target_agent_id: UUID | None = None
    target_agent_type: Name | None = None
    target_capability: Capability | None = None
    is_active: Flag = True

    @field_validator("conditions")
    @classmethod
    def _evaluable(cls, conditions: dict[str, Any]) -> dict[str, Any]:
        problem = condition_problem(conditions)
        if problem:
            raise ValueError(problem)
        return conditions


class RuleOut(BaseModel):
    id: UUID
    name: str
    description: str | None
    priority: int
    conditions: dict[str, Any]
    action: str
    target_agent_id: UUID | None
    target_agent_type: str | None
    target_capability: str | None
    is_active: bool
    match_count: int
    last_matched_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DecideIn(StrictModel):
    request_type: Name
    capability: Capability | None = None
    agent_type: Name | None = None
    task_id: UUID | None = Field(default=None, description="assigned to the chosen agent")
    request: dict[str, Any] = Field(default_factory=dict, description="matched by conditions")


class Candidate(BaseModel):
    agent_id: UUID
    name: str
    reputation: float
    load: int


class DecisionOut(BaseModel):
    id: UUID
    rule_id: UUID | None
    rule_name: str | None
    task_id: UUID | None
    selected_agent_id: UUID | None
    request_type: str
    request: dict[str, Any]
    candidates: list[Candidate]
    score: float | None
    reason: str | None
    latency_ms: float | None
    outcome: str
    created_at: datetime


class DecisionPage(Page):
    items: list[DecisionOut]


@router.post("/rules", status_code=status.HTTP_201_CREATED, response_model=RuleOut)
async def create_rule(body: RuleIn, db: DbDep, _key: WriteKey) -> RuleOut:
    """Add a rule; 409 when the name is taken, 422 when the target agent does not exist."""
    values = body.model_dump()
    return RuleOut.model_validate(await write(db, lambda conn: repo.create_rule(conn, values)))


@router.get("/rules", response_model=list[RuleOut])
async def list_rules(db: DbDep, _key: ReadKey, is_active: bool | None = None) -> list[RuleOut]:
    """Rules in evaluation order (priority, then name)."""
    rows = await read(db, lambda conn: repo.list_rules(conn, is_active))
    return [RuleOut.model_validate(r) for r in rows]


def _candidate(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "agent_id": str(row["id"]),
        "name": row["name"],
        "reputation": float(row["reputation"]),
        "load": int(row["load"]),
    }


async def _decide(conn: asyncpg.Connection, body: DecideIn, started: float) -> UUID:
    if body.task_id is not None and await repo.get_task(conn, body.task_id) is None:
        raise NotFound(f"body.task_id: no task with id {body.task_id}")
    request = body.model_dump(mode="json")
    decision: dict[str, Any] = {
        "rule_id": None,
        "selected_agent_id": None,
        "candidates": [],
        "score": None,
        "outcome": "no_match",
        "reason": "no active rule matches the request",
    }
    passed: list[str] = []
    for rule in await repo.active_rules(conn):
        if not rule_matches(rule["conditions"], request):
            continue
        name = rule["name"]
        if rule["action"] in _OUTCOME_OF:
            decision.update(
                rule_id=rule["id"],
                outcome=_OUTCOME_OF[rule["action"]],
                reason=f"rule {name}: {rule['action']}",
            )
            break
        wanted_type = rule["target_agent_type"] or body.agent_type
        if body.agent_type and rule["target_agent_type"] not in (None, body.agent_type):
            passed.append(name)
            continue
        rows = await repo.candidates(
            conn,
            agent_id=rule["target_agent_id"],
            agent_type=wanted_type,
            capabilities=(body.capability, rule["target_capability"]),
            limit=CANDIDATES_MAX,
        )
        if not rows:
            passed.append(name)
            continue
        ranked = [_candidate(r) for r in rows]
        decision.update(rule_id=rule["id"], candidates=ranked)
        if rule["action"] == "broadcast":
            decision.update(outcome="broadcast", reason=f"rule {name}: {len(rows)} agents")
        else:
            best = rows[0]
            decision.update(
                outcome="routed",
                selected_agent_id=best["id"],
                score=float(best["reputation"]),
                reason=f"rule {name}: {best['name']} (reputation {float(best['reputation']):g}, "
                f"load {int(best['load'])}) of {len(rows)} candidates",
            )
        break
    if decision["outcome"] == "no_match" and passed:
        decision["reason"] = f"no available agent for the matching rules: {', '.join(passed)}"
    if decision["rule_id"] is not None:
        await repo.rule_matched(conn, decision["rule_id"])
    if body.task_id is not None and decision["selected_agent_id"] is not None:
        await repo.assign_task(conn, body.task_id, decision["selected_agent_id"])
    return await repo.record_decision(
        conn,
        {
            **decision,
            "task_id": body.task_id,
            "request_type": body.request_type,
            "request": request,
            "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
        },
    )


@router.post("/decide", status_code=status.HTTP_201_CREATED, response_model=DecisionOut)
async def decide(body: DecideIn, db: DbDep, _key: WriteKey) -> DecisionOut:
    """Choose the agent for a request (capability, then reputation, then load) and log it."""
    started = time.perf_counter()

    async def work(conn: asyncpg.Connection) -> dict[str, Any] | None:
        decision_id = await _decide(conn, body, started)
        return await repo.get_decision(conn, decision_id)

    return DecisionOut.model_validate(await write(db, work))


@router.get("/decisions", response_model=DecisionPage)
async def list_decisions(
    db: DbDep,
    _key: ReadKey,
    agent_id: UUID | None = None,
    task_id: UUID | None = None,
    rule_id: UUID | None = None,
    outcome: Outcome | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DecisionPage:
    """Decisions of the last 14 days, newest first."""
    before = decode_cursor(cursor)
    rows = await read(
        db,
        lambda conn: repo.list_decisions(
            conn,
            agent_id=agent_id,
            task_id=task_id,
            outcome=outcome,
            rule_id=rule_id,
            before=before,
            limit=limit,
        ),
    )
    return DecisionPage(
        items=[DecisionOut.model_validate(r) for r in rows], next_cursor=next_cursor(rows, limit)
    )


@router.get("/decisions/{decision_id}", response_model=DecisionOut)
async def get_decision(decision_id: UUID, db: DbDep, _key: ReadKey) -> DecisionOut:
    row = await read(db, lambda conn: repo.get_decision(conn, decision_id))
    if not row:
        raise NotFound(f"no routing decision with id {decision_id}")
    return DecisionOut.model_validate(row)
