"""``memory.consolidate``: the hippocampal replay of an agent's recent episodes.

For each agent (one transaction per agent), with ``as_of`` the reference time (the payload's,
or the job's creation time):

1. **Replay**: the agent's memories not yet consolidated (``is_consolidated = false``, not
   archived, created at or before ``as_of``), oldest first, at most ``max_episodes``; each
   replayed memory becomes a ``replay_episodes`` row.
2. **Merge near-duplicates**: token-Jaccard similarity (:mod:`cesar_core.memory`) of the
   contents, same ``memory_type`` only. An episode joins the first already consolidated memory
   it matches (``>= merge_threshold``), else the first new group whose first member it
   matches, else starts a group. A group of two or more becomes one new consolidated memory
   (content and summary of its oldest member, union of the tags, highest importance, summed
   access counts) linked to each source by a ``generalizes`` association; the sources are
   archived. A group of one is kept as it is and marked consolidated (later episodes can merge
   into it). Each merge is a ``memory_consolidations`` row (strategy ``merge``).
3. **Strengthen co-recalled associations**: every ``memory.recalled`` agent event (written by
   ``POST /api/v1/agents/{id}/memories/recall``) since the previous run's ``as_of`` up to this
   ``as_of`` counts one co-activation for each pair of (not archived) memories it returned; a
   ``related`` association gets ``strength = 1 - (1 - s) * 0.9 ** n`` (new ones start from 0).
4. **Decay**: memories not recalled (nor created) in the last ``unused_days`` before ``as_of``
   lose importance: ``importance * (1 - decay_rate)``, rounded to 6 decimals; one
   ``memory_consolidations`` row (strategy ``decay``) lists them.
5. The run is a ``replay_sessions`` row (counts, and the details in ``metrics``).

Idempotent: the run of a job for an agent is skipped when a ``replay_sessions`` row with this
job's id exists for that agent, and everything for an agent commits in one transaction.
Deterministic: given the rows and ``as_of``, the same memories merge and the same numbers come
out.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any
from uuid import UUID

import asyncpg
from cesar_core.jobs import builtin
from cesar_core.jobs.builtin import MemoryConsolidatePayload
from cesar_core.jobs.registry import JobContext, JobType
from cesar_core.memory import jaccard, strengthen, tokens

__all__ = ["JOB", "consolidate_agent", "plan_merges"]

RECALL_EVENT = "memory.recalled"
DECAY_DETAILS_MAX = 200
RESULT_RUNS_MAX = 20

AGENTS_WITH_MEMORIES = """
SELECT DISTINCT agent_id FROM agent_memories WHERE is_archived = false ORDER BY agent_id
"""
AGENT_EXISTS = "SELECT id FROM agents WHERE id = $1"
SESSION_OF_JOB = """
SELECT id, metrics FROM replay_sessions WHERE job_id = $1 AND agent_id = $2 LIMIT 1
"""
PREVIOUS_AS_OF = """
SELECT metrics->>'as_of' AS as_of FROM replay_sessions
WHERE agent_id = $1 AND status = 'succeeded' AND metrics->>'as_of' IS NOT NULL
ORDER BY created_at DESC, id DESC
LIMIT 1
"""
EPISODES = """
SELECT id, memory_type, content, summary, tags, importance, access_count, last_accessed_at,
       created_at
FROM agent_memories
WHERE agent_id = $1 AND is_consolidated = false AND is_archived = false AND created_at <= $2
ORDER BY created_at, id
LIMIT $3
"""
CONSOLIDATED = """
SELECT id, memory_type, content, summary, tags, importance, access_count, last_accessed_at,
       created_at, metadata
FROM agent_memories
WHERE agent_id = $1 AND is_consolidated = true AND is_archived = false
ORDER BY created_at, id
LIMIT 5000
"""
INSERT_MERGED = """
INSERT INTO agent_memories (agent_id, memory_type, content, summary, tags, metadata, importance,
                            access_count, last_accessed_at, is_consolidated)
VALUES ($1, $2, $3, $4, $5, CAST($6 AS JSONB), $7, $8, $9, true)
RETURNING id
"""
UPDATE_ABSORBER = """
UPDATE agent_memories
SET tags = $2, metadata = CAST($3 AS JSONB), importance = $4, access_count = $5,
    last_accessed_at = $6, updated_at = now()
WHERE id = $1
"""
ARCHIVE_SOURCES = """
UPDATE agent_memories SET is_consolidated = true, is_archived = true, updated_at = now()
WHERE id = ANY($1::UUID[])
"""
MARK_KEPT = """
UPDATE agent_memories SET is_consolidated = true, updated_at = now()
WHERE id = ANY($1::UUID[])
"""
LINK_SOURCE = """
INSERT INTO memory_associations (source_memory_id, target_memory_id, association_type, strength)
VALUES ($1, $2, 'generalizes', 1.0)
ON CONFLICT (source_memory_id, target_memory_id) DO NOTHING
"""
RECALL_EVENTS = """
SELECT payload FROM agent_events
WHERE agent_id = $1 AND event_type = 'memory.recalled'
  AND ($2::TIMESTAMPTZ IS NULL OR occurred_at > $2) AND occurred_at <= $3
ORDER BY occurred_at, id
"""
LIVE_MEMORY_IDS = """
SELECT id FROM agent_memories
WHERE agent_id = $1 AND id = ANY($2::UUID[]) AND is_archived = false
"""
ASSOCIATIONS_AMONG = """
SELECT source_memory_id, target_memory_id, strength FROM memory_associations
WHERE source_memory_id = ANY($1::UUID[]) AND target_memory_id = ANY($1::UUID[])
"""
UPSERT_ASSOCIATION = """
INSERT INTO memory_associations (source_memory_id, target_memory_id, association_type, strength,
                                 co_activations)
VALUES ($1, $2, 'related', $3, $4)
ON CONFLICT (source_memory_id, target_memory_id) DO UPDATE SET
    strength = EXCLUDED.strength,
    co_activations = memory_associations.co_activations + EXCLUDED.co_activations,
    updated_at = now()
"""
UNUSED = """
SELECT id, importance, decay_rate FROM agent_memories
WHERE agent_id = $1 AND is_archived = false AND importance > 0
  AND COALESCE(last_accessed_at, created_at) < $2 AND created_at <= $3
ORDER BY id
"""
SET_IMPORTANCE = "UPDATE agent_memories SET importance = $2, updated_at = now() WHERE id = $1"
INSERT_SESSION = """
INSERT INTO replay_sessions (agent_id, job_id, strategy, trigger_reason, status,
                             episodes_planned, episodes_replayed, memories_strengthened,
                             mean_priority, metrics, started_at, finished_at)
VALUES ($1, $2, 'recent', $3, 'succeeded', $4, $4, $5, $6, CAST($7 AS JSONB), $8, $9)
RETURNING id
"""
INSERT_EPISODE = """
INSERT INTO replay_episodes (session_id, memory_id, sequence_no, priority, importance_before,
                             importance_after, outcome)
VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS JSONB))
"""
INSERT_CONSOLIDATION = """
INSERT INTO memory_consolidations (agent_id, job_id, strategy, status, source_memory_ids,
                                   result_memory_id, memories_in, memories_out, memories_pruned,
                                   summary, details, started_at, finished_at)
VALUES ($1, $2, $3, 'succeeded', $4, $5, $6, $7, 0, $8, CAST($9 AS JSONB), $10, $11)
"""


@dataclass
class Group:
    """Memories that merge: into an existing consolidated memory, or into a new one."""

    members: list[dict[str, Any]]
    target: dict[str, Any] | None = None
    similarities: list[float] = field(default_factory=list)

    @property
    def seed(self) -> dict[str, Any]:
        return self.target if self.target is not None else self.members[0]


def plan_merges(
    episodes: list[dict[str, Any]], consolidated: list[dict[str, Any]], threshold: float
) -> tuple[list[Group], list[Group]]:
    """(groups absorbed by consolidated memories, new groups), in a deterministic order."""
    seeds: dict[UUID, frozenset[str]] = {}
    absorbing: list[Group] = [Group(members=[], target=c) for c in consolidated]
    fresh: list[Group] = []
    for group in absorbing:
        seeds[group.seed["id"]] = tokens(group.seed["content"])
    for episode in episodes:
        words = tokens(episode["content"])
        chosen: Group | None = None
        best = 0.0
        for group in (*absorbing, *fresh):
            if group.seed["memory_type"] != episode["memory_type"]:
                continue
            similarity = jaccard(words, seeds[group.seed["id"]])
            if similarity >= threshold:
                chosen, best = group, similarity
                break
        if chosen is None:
            group = Group(members=[episode])
            seeds[episode["id"]] = words
            fresh.append(group)
            continue
        chosen.members.append(episode)
        chosen.similarities.append(round(best, 6))
    return [g for g in absorbing if g.members], fresh


def _merged_fields(rows: list[dict[str, Any]]) -> dict[str, Any]:
    accessed = [r["last_accessed_at"] for r in rows if r["last_accessed_at"] is not None]
    return {
        "tags": sorted({t for r in rows for t in r["tags"]}),
        "importance": max(float(r["importance"]) for r in rows),
        "access_count": sum(int(r["access_count"]) for r in rows),
        "last_accessed_at": max(accessed) if accessed else None,
    }


@dataclass
class RunContext:
    conn: asyncpg.Connection
    agent_id: UUID
    job_id: UUID
    as_of: datetime
    started_at: datetime


async def _record_merge(
    run: RunContext,
    sources: list[UUID],
    result_id: UUID,
    summary: str,
    details: dict[str, Any],
) -> None:
    await run.conn.execute(
        INSERT_CONSOLIDATION,
        run.agent_id,
        run.job_id,
        "merge",
        sources,
        result_id,
        len(sources),
        1,
        summary,
        json.dumps(details),
        run.started_at,
        run.started_at,
    )


async def _merge(
    run: RunContext, absorbed: list[Group], fresh: list[Group]
) -> tuple[dict[UUID, dict[str, Any]], set[UUID]]:
    """Apply the merges; the outcome per episode, and the ids of memories written."""
    outcome: dict[UUID, dict[str, Any]] = {}
    touched: set[UUID] = set()
    for group in absorbed:
        target = group.target
        assert target is not None
        merged = _merged_fields([target, *group.members])
        metadata = json.loads(target["metadata"]) if target["metadata"] else {}
        sources = [m["id"] for m in group.members]
        previous = metadata.get("consolidated_from", [])
        metadata["consolidated_from"] = [*previous, *(str(s) for s in sources)]
        await run.conn.execute(
            UPDATE_ABSORBER,
            target["id"],
            merged["tags"],
            json.dumps(metadata),
            merged["importance"],
            merged["access_count"],
            merged["last_accessed_at"],
        )
        await run.conn.execute(ARCHIVE_SOURCES, sources)
        await run.conn.executemany(LINK_SOURCE, [(target["id"], s) for s in sources])
        await _record_merge(
            run,
            sources,
            target["id"],
            f"{len(sources)} memories merged into a consolidated memory",
            {"similarity": group.similarities, "into_existing": True},
        )
        touched.add(target["id"])
        for member, similarity in zip(group.members, group.similarities, strict=True):
            outcome[member["id"]] = {
                "action": "merged",
                "into": str(target["id"]),
                "similarity": similarity,
            }
    kept = [g.members[0]["id"] for g in fresh if len(g.members) == 1]
    if kept:
        await run.conn.execute(MARK_KEPT, kept)
        for memory_id in kept:
            outcome[memory_id] = {"action": "kept"}
    for group in fresh:
        if len(group.members) < 2:
            continue
        seed = group.members[0]
        merged = _merged_fields(group.members)
        sources = [m["id"] for m in group.members]
        metadata = {"consolidated_from": [str(s) for s in sources], "job_id": str(run.job_id)}
        result_id: UUID = await run.conn.fetchval(
            INSERT_MERGED,
            run.agent_id,
            seed["memory_type"],
            seed["content"],
            seed["summary"],
            merged["tags"],
            json.dumps(metadata),
            merged["importance"],
            merged["access_count"],
            merged["last_accessed_at"],
        )
        await run.conn.execute(ARCHIVE_SOURCES, sources)
        await run.conn.executemany(LINK_SOURCE, [(result_id, s) for s in sources])
        await _record_merge(
            run,
            sources,
            result_id,
            f"{len(sources)} near-duplicate memories merged into one",
            {"similarity": [1.0, *group.similarities], "into_existing": False},
        )
        touched.add(result_id)
        outcome[seed["id"]] = {"action": "merged", "into": str(result_id), "similarity": 1.0}
        for member, similarity in zip(group.members[1:], group.similarities, strict=True):
            outcome[member["id"]] = {
                "action": "merged",
                "into": str(result_id),
                "similarity": similarity,
            }
    return outcome, touched


async def _strengthen(run: RunContext, since: datetime | None) -> tuple[int, int]:
    """(associations strengthened, distinct memories in them)."""
    pairs: Counter[tuple[UUID, UUID]] = Counter()
    for row in await run.conn.fetch(RECALL_EVENTS, run.agent_id, since, run.as_of):
        payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        ids: set[UUID] = set()
        for raw in payload.get("memory_ids", []) if isinstance(payload, dict) else []:
            try:
                ids.add(UUID(str(raw)))
            except ValueError:
                continue
        for a, b in combinations(sorted(ids, key=str), 2):
            pairs[(a, b)] += 1
    if not pairs:
        return 0, 0
    wanted = sorted({i for pair in pairs for i in pair}, key=str)
    live = {r["id"] for r in await run.conn.fetch(LIVE_MEMORY_IDS, run.agent_id, wanted)}
    existing = {
        (r["source_memory_id"], r["target_memory_id"]): float(r["strength"])
        for r in await run.conn.fetch(ASSOCIATIONS_AMONG, sorted(live, key=str))
    }
    writes = []
    memories: set[UUID] = set()
    for (a, b), times in sorted(pairs.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        if a not in live or b not in live:
            continue
        # an association made the other way round (b -> a) is the same link: strengthen it
        key = (a, b) if (a, b) in existing or (b, a) not in existing else (b, a)
        writes.append((key[0], key[1], strengthen(existing.get(key, 0.0), times), times))
        memories.update((a, b))
    if writes:
        await run.conn.executemany(UPSERT_ASSOCIATION, writes)
    return len(writes), len(memories)


async def _decay(
    run: RunContext, unused_days: float, skip: set[UUID]
) -> dict[str, tuple[float, float]]:
    cutoff = run.as_of - timedelta(days=unused_days)
    changes: dict[str, tuple[float, float]] = {}
    writes = []
    for row in await run.conn.fetch(UNUSED, run.agent_id, cutoff, run.as_of):
        if row["id"] in skip:
            continue
        before = float(row["importance"])
        after = round(before * (1.0 - min(1.0, float(row["decay_rate"]))), 6)
        if after == before:
            continue
        writes.append((row["id"], after))
        changes[str(row["id"])] = (before, after)
    if writes:
        await run.conn.executemany(SET_IMPORTANCE, writes)
        details = dict(list(changes.items())[:DECAY_DETAILS_MAX])
        await run.conn.execute(
            INSERT_CONSOLIDATION,
            run.agent_id,
            run.job_id,
            "decay",
            [],
            None,
            len(writes),
            len(writes),
            f"importance of {len(writes)} unused memories decayed",
            json.dumps({"unused_days": unused_days, "importance": details}),
            run.started_at,
            run.started_at,
        )
    return changes


async def consolidate_agent(
    conn: asyncpg.Connection,
    *,
    agent_id: UUID,
    job_id: UUID,
    as_of: datetime,
    payload: MemoryConsolidatePayload,
    started_at: datetime,
) -> dict[str, Any]:
    """One agent's replay, in the caller's transaction; the run's metrics."""
    done = await conn.fetchrow(SESSION_OF_JOB, job_id, agent_id)
    if done is not None:
        metrics = json.loads(done["metrics"]) if done["metrics"] else {}
        return {**metrics, "skipped": "already consolidated by this job"}
    previous = await conn.fetchval(PREVIOUS_AS_OF, agent_id)
    since = datetime.fromisoformat(previous) if previous else None
    if since is not None and since > as_of:
        since = as_of
    run = RunContext(conn, agent_id, job_id, as_of, started_at)
    episodes = [dict(r) for r in await conn.fetch(EPISODES, agent_id, as_of, payload.max_episodes)]
    consolidated = [dict(r) for r in await conn.fetch(CONSOLIDATED, agent_id)]
    absorbed, fresh = plan_merges(episodes, consolidated, payload.merge_threshold)
    outcome, touched = await _merge(run, absorbed, fresh)
    strengthened, memories_strengthened = await _strengthen(run, since)
    decayed = await _decay(run, payload.unused_days, touched)
    merges = [g for g in fresh if len(g.members) > 1]
    metrics = {
        "as_of": as_of.isoformat(),
        "since": since.isoformat() if since else None,
        "episodes": len(episodes),
        "merged_groups": len(merges) + len(absorbed),
        "memories_merged": sum(len(g.members) for g in merges)
        + sum(len(g.members) for g in absorbed),
        "kept": sum(1 for g in fresh if len(g.members) == 1),
        "associations_strengthened": strengthened,
        "decayed": len(decayed),
    }
    importances = [float(e["importance"]) for e in episodes]
    session_id = await conn.fetchval(
        INSERT_SESSION,
        agent_id,
        job_id,
        payload.trigger,
        len(episodes),
        memories_strengthened,
        round(sum(importances) / len(importances), 6) if importances else None,
        json.dumps(metrics),
        started_at,
        started_at,
    )
    await conn.executemany(
        INSERT_EPISODE,
        [
            (
                session_id,
                e["id"],
                seq,
                float(e["importance"]),
                float(e["importance"]),
                decayed.get(str(e["id"]), (0.0, float(e["importance"])))[1],
                json.dumps(outcome.get(e["id"], {"action": "kept"})),
            )
            for seq, e in enumerate(episodes)
        ],
    )
    return metrics


async def consolidate(ctx: JobContext, payload: MemoryConsolidatePayload) -> dict[str, Any]:
    as_of = payload.as_of or ctx.job.created_at
    started_at = ctx.clock()
    async with ctx.db.connection() as conn:
        if payload.agent_id is not None:
            found = await conn.fetchval(AGENT_EXISTS, payload.agent_id)
            agents = [payload.agent_id] if found else []
        else:
            agents = [r["agent_id"] for r in await conn.fetch(AGENTS_WITH_MEMORIES)]
    runs: dict[str, Any] = {}
    for agent_id in agents:

        async def work(conn: asyncpg.Connection, agent_id: UUID = agent_id) -> dict[str, Any]:
            return await consolidate_agent(
                conn,
                agent_id=agent_id,
                job_id=ctx.job.id,
                as_of=as_of,
                payload=payload,
                started_at=started_at,
            )

        runs[str(agent_id)] = await ctx.db.transaction(work)
    totals = Counter[str]()
    for metrics in runs.values():
        for key in ("episodes", "memories_merged", "associations_strengthened", "decayed"):
            totals[key] += int(metrics.get(key) or 0)
    # the per-agent details are in replay_sessions.metrics; the result stays small
    return {
        "as_of": as_of.isoformat(),
        "agents": len(agents),
        **dict(totals),
        "runs": dict(list(runs.items())[:RESULT_RUNS_MAX]),
    }


JOB = JobType(builtin.MEMORY_CONSOLIDATE, consolidate)
