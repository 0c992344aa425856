"""``reputation.compute``: ``agent_reputation`` from task and job outcomes.

The formula is :mod:`cesar_core.reputation` (success rate, latency, recency-weighted). For each
agent with tasks or a reputation row (one transaction per agent), with ``as_of`` the reference
time (the payload's, or the job's creation time):

* the outcomes are the agent's tasks that finished inside the window before ``as_of``: the
  task's own status and times when it is ``succeeded``/``failed``, otherwise those of the job
  that backs it (``agent_tasks.job_id`` -> ``job_queue``); cancelled work does not count;
* each outcome not yet recorded becomes one ``agent_reputation_events`` row
  (``task_success`` / ``task_failure``), oldest first, with the score before and after adding
  it (``delta`` is the difference; the first one also carries the drift since the last run);
* when nothing new finished but the score moved by 0.001 or more (older outcomes weigh less
  as time passes), one ``decay`` event records the move (smaller drifts update the score
  without an event);
* ``agent_reputation`` is upserted with the new score and its components.

Idempotent: an outcome is recorded once (its event names the task), and a second run at the
same ``as_of`` computes the same score, so it writes no event.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import ReputationComputePayload
from cesar_core.jobs.registry import JobContext, JobType
from cesar_core.reputation import Outcome, Reputation, compute

__all__ = ["JOB", "compute_agent"]

RESULT_AGENTS_MAX = 50
# a score that only drifted (no new outcome) by less than this is updated without an event,
# so frequent runs do not flood agent_reputation_events with tiny decays
DECAY_EVENT_MIN_DELTA = 0.001

AGENTS = """
SELECT a.id FROM agents AS a
WHERE EXISTS (SELECT 1 FROM agent_tasks AS t WHERE t.agent_id = a.id)
   OR EXISTS (SELECT 1 FROM agent_reputation AS r WHERE r.agent_id = a.id)
ORDER BY a.id
"""
AGENT_EXISTS = "SELECT id FROM agents WHERE id = $1"
OUTCOMES = """
SELECT task_id, job_id, outcome, started_at, finished_at FROM (
    SELECT t.id AS task_id,
           t.job_id,
           CASE WHEN t.status IN ('succeeded', 'failed') THEN t.status
                WHEN j.status IN ('succeeded', 'failed') THEN j.status END AS outcome,
           CASE WHEN t.status IN ('succeeded', 'failed') THEN t.started_at
                ELSE j.started_at END AS started_at,
           CASE WHEN t.status IN ('succeeded', 'failed') THEN COALESCE(t.finished_at, t.updated_at)
                ELSE j.finished_at END AS finished_at
    FROM agent_tasks AS t
    LEFT JOIN job_queue AS j ON j.id = t.job_id
    WHERE t.agent_id = $1
) AS o
WHERE outcome IS NOT NULL AND finished_at > $2 AND finished_at <= $3
ORDER BY finished_at, task_id
"""
RECORDED = """
SELECT task_id FROM agent_reputation_events
WHERE agent_id = $1 AND task_id = ANY($2::UUID[])
  AND event_type IN ('task_success', 'task_failure')
"""
CURRENT = """
SELECT score, endorsements, complaints FROM agent_reputation WHERE agent_id = $1
"""
INSERT_EVENT = """
INSERT INTO agent_reputation_events (agent_id, event_type, delta, score_before, score_after,
                                     reason, task_id, job_id, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CAST($9 AS JSONB))
"""
UPSERT_REPUTATION = """
INSERT INTO agent_reputation (agent_id, score, reliability, quality, responsiveness, successes,
                              failures, avg_latency_ms, last_event_at, last_decayed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (agent_id) DO UPDATE SET
    score = EXCLUDED.score, reliability = EXCLUDED.reliability, quality = EXCLUDED.quality,
    responsiveness = EXCLUDED.responsiveness, successes = EXCLUDED.successes,
    failures = EXCLUDED.failures, avg_latency_ms = EXCLUDED.avg_latency_ms,
    last_event_at = COALESCE(EXCLUDED.last_event_at, agent_reputation.last_event_at),
    last_decayed_at = EXCLUDED.last_decayed_at, updated_at = now()
"""


def _outcome(row: asyncpg.Record) -> Outcome:
    latency = None
    if row["started_at"] is not None:
        latency = max(0.0, (row["finished_at"] - row["started_at"]).total_seconds() * 1000.0)
    return Outcome(row["outcome"] == "succeeded", row["finished_at"], latency)


async def compute_agent(
    conn: asyncpg.Connection,
    *,
    agent_id: UUID,
    job_id: UUID,
    as_of: datetime,
    payload: ReputationComputePayload,
) -> dict[str, Any]:
    """One agent's reputation, in the caller's transaction."""
    since = as_of - timedelta(days=payload.window_days)
    rows = await conn.fetch(OUTCOMES, agent_id, since, as_of)
    recorded = {
        r["task_id"] for r in await conn.fetch(RECORDED, agent_id, [r["task_id"] for r in rows])
    }
    current = await conn.fetchrow(CURRENT, agent_id)
    endorsements = int(current["endorsements"]) if current else 0
    complaints = int(current["complaints"]) if current else 0

    def score(outcomes: list[Outcome]) -> Reputation:
        return compute(
            outcomes,
            now=as_of,
            endorsements=endorsements,
            complaints=complaints,
            window_days=payload.window_days,
            half_life_days=payload.half_life_days,
        )

    counted = [_outcome(r) for r in rows if r["task_id"] in recorded]
    before = float(current["score"]) if current else 0.5
    events = []
    for row in rows:
        if row["task_id"] in recorded:
            continue
        outcome = _outcome(row)
        counted.append(outcome)
        after = score(counted).score
        events.append(
            (
                agent_id,
                "task_success" if outcome.success else "task_failure",
                round(after - before, 6),
                before,
                after,
                f"task {row['outcome']}",
                row["task_id"],
                row["job_id"],
                json.dumps(
                    {
                        "latency_ms": outcome.latency_ms,
                        "finished_at": outcome.finished_at.isoformat(),
                        "as_of": as_of.isoformat(),
                        "computed_by": str(job_id),
                        "trigger": payload.trigger,
                    }
                ),
            )
        )
        before = after
    final = score([_outcome(r) for r in rows])
    if not events and abs(final.score - before) >= DECAY_EVENT_MIN_DELTA:
        events.append(
            (
                agent_id,
                "decay",
                round(final.score - before, 6),
                before,
                final.score,
                "recency: older outcomes weigh less",
                None,
                None,
                json.dumps({"as_of": as_of.isoformat(), "computed_by": str(job_id)}),
            )
        )
    if events:
        await conn.executemany(INSERT_EVENT, events)
    await conn.execute(
        UPSERT_REPUTATION,
        agent_id,
        final.score,
        final.reliability,
        final.quality,
        final.responsiveness,
        final.successes,
        final.failures,
        final.avg_latency_ms,
        rows[-1]["finished_at"] if rows else None,
        as_of,
    )
    return {
        "score": final.score,
        "successes": final.successes,
        "failures": final.failures,
        "events": len(events),
    }


async def compute_reputation(ctx: JobContext, payload: ReputationComputePayload) -> dict[str, Any]:
    as_of = payload.as_of or ctx.job.created_at
    async with ctx.db.connection() as conn:
        if payload.agent_id is not None:
            agents = (
                [payload.agent_id] if await conn.fetchval(AGENT_EXISTS, payload.agent_id) else []
            )
        else:
            agents = [r["id"] for r in await conn.fetch(AGENTS)]
    results: dict[str, Any] = {}
    events = 0
    for agent_id in agents:

        async def work(conn: asyncpg.Connection, agent_id: UUID = agent_id) -> dict[str, Any]:
            return await compute_agent(
                conn, agent_id=agent_id, job_id=ctx.job.id, as_of=as_of, payload=payload
            )

        result = await ctx.db.transaction(work)
        events += result["events"]
        if len(results) < RESULT_AGENTS_MAX:
            results[str(agent_id)] = result
    return {"as_of": as_of.isoformat(), "agents": len(agents), "events": events, "scores": results}


JOB = JobType(builtin.REPUTATION_COMPUTE, compute_reputation)
