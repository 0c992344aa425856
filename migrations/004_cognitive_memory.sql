-- 004 cognitive memory: per-agent memories with importance and decay, their
-- associations, and consolidation runs.

CREATE TABLE IF NOT EXISTS agent_memories (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id         UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    memory_type      TEXT NOT NULL DEFAULT 'episodic',
    content          TEXT NOT NULL,
    summary          TEXT,
    embedding        FLOAT8[],
    tags             TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    metadata         JSONB NOT NULL DEFAULT '{}'::JSONB,
    -- source_event_id is a soft reference: agent_events rows expire
    source_event_id  UUID,
    importance       FLOAT8 NOT NULL DEFAULT 0.5,
    strength         FLOAT8 NOT NULL DEFAULT 1.0,
    decay_rate       FLOAT8 NOT NULL DEFAULT 0.01,
    access_count     INT8 NOT NULL DEFAULT 0,
    last_accessed_at TIMESTAMPTZ,
    is_consolidated  BOOL NOT NULL DEFAULT false,
    is_archived      BOOL NOT NULL DEFAULT false,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT agent_memories_type_check CHECK (memory_type IN ('episodic', 'semantic', 'procedural', 'working')),
    CONSTRAINT agent_memories_importance_check CHECK (importance >= 0 AND importance <= 1),
    CONSTRAINT agent_memories_strength_check CHECK (strength >= 0 AND strength <= 1),
    CONSTRAINT agent_memories_decay_check CHECK (decay_rate >= 0),
    CONSTRAINT agent_memories_access_count_check CHECK (access_count >= 0)
);

CREATE INDEX IF NOT EXISTS agent_memories_agent_type_importance_idx ON agent_memories (agent_id, memory_type, importance DESC);

CREATE INDEX IF NOT EXISTS agent_memories_agent_accessed_idx ON agent_memories (agent_id, last_accessed_at DESC);

CREATE INDEX IF NOT EXISTS agent_memories_unconsolidated_idx ON agent_memories (agent_id, created_at) WHERE is_consolidated = false;

CREATE INDEX IF NOT EXISTS agent_memories_tags_gin_idx ON agent_memories USING GIN (tags);

CREATE TABLE IF NOT EXISTS memory_associations (
    source_memory_id UUID NOT NULL REFERENCES agent_memories (id) ON DELETE CASCADE,
    target_memory_id UUID NOT NULL REFERENCES agent_memories (id) ON DELETE CASCADE,
    association_type TEXT NOT NULL DEFAULT 'related',
    strength         FLOAT8 NOT NULL DEFAULT 0.5,
    co_activations   INT8 NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source_memory_id, target_memory_id),
    CONSTRAINT memory_associations_not_self CHECK (source_memory_id <> target_memory_id),
    CONSTRAINT memory_associations_type_check CHECK (association_type IN ('related', 'causal', 'temporal', 'contradicts', 'generalizes')),
    CONSTRAINT memory_associations_strength_check CHECK (strength >= 0 AND strength <= 1),
    CONSTRAINT memory_associations_co_activations_check CHECK (co_activations >= 0)
);

CREATE INDEX IF NOT EXISTS memory_associations_target_idx ON memory_associations (target_memory_id);

CREATE TABLE IF NOT EXISTS memory_consolidations (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id          UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    job_id            UUID,
    strategy          TEXT NOT NULL DEFAULT 'summarize',
    status            TEXT NOT NULL DEFAULT 'pending',
    source_memory_ids UUID[] NOT NULL DEFAULT ARRAY[]::UUID[],
    result_memory_id  UUID REFERENCES agent_memories (id) ON DELETE SET NULL,
    memories_in       INT8 NOT NULL DEFAULT 0,
    memories_out      INT8 NOT NULL DEFAULT 0,
    memories_pruned   INT8 NOT NULL DEFAULT 0,
    summary           TEXT,
    details           JSONB NOT NULL DEFAULT '{}'::JSONB,
    error             TEXT,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT memory_consolidations_status_check CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT memory_consolidations_strategy_check CHECK (strategy IN ('summarize', 'merge', 'prune', 'decay', 'abstract')),
    CONSTRAINT memory_consolidations_counts_check CHECK (memories_in >= 0 AND memories_out >= 0 AND memories_pruned >= 0)
);

CREATE INDEX IF NOT EXISTS memory_consolidations_agent_created_idx ON memory_consolidations (agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS memory_consolidations_status_idx ON memory_consolidations (status, created_at);
