"""Handing job rows to arq: one arq job per dispatch, id ``<row id>:<dispatch token>``.

The arq job carries no payload: the worker reads the payload from the row when it claims
it (the row is the truth). Every job uses the one arq function :data:`ARQ_FUNCTION`; the
worker looks the job type up in its registry, so a type it lacks waits visibly in
``job_queue`` instead of being lost inside arq.

arq's default serializer is pickle, which runs code chosen by whoever can write to Redis.
Every arq body here (ours and the worker's cron jobs) is JSON instead:
:func:`job_serializer` / :func:`job_deserializer`; a pickled body is refused, never loaded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import serialize_job
from redis.exceptions import RedisError

from cesar_core.errors import RedisUnavailable
from cesar_core.redis import RedisClient

__all__ = [
    "ARQ_EXPIRES_MS",
    "ARQ_FUNCTION",
    "ArqState",
    "arq_job_id",
    "arq_states",
    "job_deserializer",
    "job_serializer",
    "missing_from_redis",
    "new_token",
    "parse_arq_job_id",
    "push_jobs",
]

ARQ_FUNCTION = "cesar.job"
ARQ_EXPIRES_MS = 86_400_000  # arq's default: a job not started within a day expires


ArqState = Literal["missing", "queued", "in_progress"]


def job_serializer(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def job_deserializer(raw: bytes) -> dict[str, Any]:
    """JSON only: anything else (a pickle written by an attacker) raises, unexecuted."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("an arq job body must be a JSON object")
    return value


def new_token() -> str:
    return uuid.uuid4().hex


def arq_job_id(row_id: UUID, token: str) -> str:
    return f"{row_id}:{token}"


def parse_arq_job_id(job_id: str) -> tuple[UUID, str]:
    row_id, sep, token = job_id.partition(":")
    if not sep or not token:
        raise ValueError(f"not a cesar job id: {job_id!r}")
    return UUID(row_id), token


# KEYS: the queue, then one arq job key per job; ARGV: the body, its expiry (ms), the score,
# then one arq job id per job (in KEYS' order). Every key is written before any entry, so a
# worker never sees an entry whose key is missing (arq drops those).
_PUSH = """
local body, px, score = ARGV[1], ARGV[2], ARGV[3]
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], body, 'PX', px)
end
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], score, ARGV[i])
end
return #KEYS - 1
"""
_PUSH_CHUNK = 1000  # jobs per script call: bounds how long one call holds Redis


async def push_jobs(
    redis: RedisClient,
    queue_name: str,
    dispatches: Sequence[tuple[UUID, str]],
    *,
    expires_ms: int = ARQ_EXPIRES_MS,
) -> None:
    """Write arq's job key and queue entry for each (row id, token): one server-side script
    call per 1,000 jobs instead of two commands per job (packing thousands of commands was
    most of a reconciler pass's time in Redis)."""
    if not dispatches:
        return
    now_ms = int(time.time() * 1000)
    body = serialize_job(ARQ_FUNCTION, (), {}, None, now_ms, serializer=job_serializer)
    job_ids = [arq_job_id(row_id, token) for row_id, token in dispatches]
    script = redis.register_script(_PUSH)
    try:
        for start in range(0, len(job_ids), _PUSH_CHUNK):
            chunk = job_ids[start : start + _PUSH_CHUNK]
            await script(
                keys=[queue_name, *(job_key_prefix + job_id for job_id in chunk)],
                args=[body, expires_ms, now_ms, *chunk],
            )
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(f"cannot dispatch jobs to arq: {exc or type(exc).__name__}") from exc


async def arq_states(
    redis: RedisClient, queue_name: str, dispatches: Sequence[tuple[UUID, str]]
) -> list[ArqState]:
    """Where arq holds each dispatch: waiting in the queue, started by a worker (its
    in-progress key is set), or nowhere (no job key, or neither queued nor started: a flushed
    or restarted Redis)."""
    if not dispatches:
        return []
    job_ids = [arq_job_id(row_id, token) for row_id, token in dispatches]
    try:  # three commands whatever the batch size (MGET, ZMSCORE, MGET), in one round trip
        async with redis.pipeline(transaction=False) as pipe:
            pipe.mget([job_key_prefix + job_id for job_id in job_ids])
            pipe.zmscore(queue_name, job_ids)
            pipe.mget([in_progress_key_prefix + job_id for job_id in job_ids])
            bodies, scores, in_progress_keys = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(f"cannot look jobs up in arq: {exc or type(exc).__name__}") from exc
    states: list[ArqState] = []
    for body, score, in_progress in zip(bodies, scores, in_progress_keys, strict=True):
        if body is None or (score is None and in_progress is None):
            states.append("missing")
        elif in_progress is not None:  # arq keeps the queue entry until the job finishes
            states.append("in_progress")
        else:
            states.append("queued")
    return states


async def missing_from_redis(
    redis: RedisClient, queue_name: str, dispatches: Sequence[tuple[UUID, str]]
) -> list[int]:
    """Indexes of the dispatches arq no longer holds (see :func:`arq_states`)."""
    states = await arq_states(redis, queue_name, dispatches)
    return [i for i, state in enumerate(states) if state == "missing"]
