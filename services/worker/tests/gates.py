"""A gated job type for the job-system tests: it counts its starts and waits on an event the
test opens, so a test decides exactly when an attempt is running and when it ends."""

from __future__ import annotations

import asyncio
import math
from typing import Any
from uuid import UUID

import pytest
from cesar_core.jobs import JobRegistry, JobSpec, JobStatus, JobType, load_registry
from cesar_worker.runtime import WorkerRuntime
from pydantic import BaseModel

from .conftest import wait_for

__all__ = ["GATES", "STARTS", "fresh_gates", "gate", "gate_registry", "token_of", "until"]

STARTS: dict[str, int] = {}
GATES: dict[str, asyncio.Event] = {}


class Gate(BaseModel):
    gate: str
    result: str = "plain"


async def gated(ctx: Any, payload: Gate) -> Any:
    STARTS[payload.gate] = STARTS.get(payload.gate, 0) + 1
    await GATES[payload.gate].wait()
    if payload.result == "nan":
        return {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "text": "lone \ud800 x"}
    if payload.result == "circular":
        loop: dict[str, Any] = {}
        loop["self"] = loop
        return loop
    return {"gate": payload.gate}


@pytest.fixture(autouse=True)
def fresh_gates() -> None:
    """Counters and gates are per test: nothing leaks from one test to the next."""
    STARTS.clear()
    GATES.clear()


def gate_registry() -> JobRegistry:
    reg = load_registry()
    reg.register(JobType(JobSpec("test.gate", Gate, timeout_seconds=60), gated))
    return reg


def gate(name: str, *, open_: bool = False) -> asyncio.Event:
    event = GATES[name] = asyncio.Event()
    if open_:
        event.set()
    return event


async def token_of(rt: WorkerRuntime, job_id: UUID) -> str:
    return (await rt.queue.get(job_id)).dispatch_token or ""


async def until(rt: WorkerRuntime, job_id: UUID, *statuses: JobStatus) -> Any:
    async def reached() -> Any:
        job = await rt.queue.get(job_id)
        return job if job.status in statuses else None

    return await wait_for(reached, timeout=20, interval=0.02)
