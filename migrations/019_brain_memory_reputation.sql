-- 020 brain memory, reputation and routing: indexes for the queries that give the tables of
-- 003, 004, 013 and 015 their behaviour (memory listing and recall, replay idempotency,
-- reputation windows, routing decision listings). Indexes only; no table changes.

-- memory listings per agent, newest first, keyset (created_at, id)
CREATE INDEX IF NOT EXISTS agent_memories_agent_created_id_idx ON agent_memories (agent_id, created_at, id);

-- a consolidation run is done once per (job, agent): the check before each run
CREATE INDEX IF NOT EXISTS replay_sessions_job_agent_idx ON replay_sessions (job_id, agent_id);

CREATE INDEX IF NOT EXISTS memory_consolidations_job_idx ON memory_consolidations (job_id);

-- reputation: finished outcomes of an agent inside the window
CREATE INDEX IF NOT EXISTS agent_tasks_agent_finished_idx ON agent_tasks (agent_id, finished_at);

-- routing decisions listed newest first, keyset (created_at, id)
CREATE INDEX IF NOT EXISTS routing_decisions_created_id_idx ON routing_decisions (created_at, id);
