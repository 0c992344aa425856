-- 013 hippocampal replay tracking: offline replay sessions that revisit
-- memories and learning episodes, and what each replayed episode changed.

CREATE TABLE IF NOT EXISTS replay_sessions (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id           UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    job_id             UUID,
    strategy           TEXT NOT NULL DEFAULT 'prioritized',
    trigger_reason     TEXT NOT NULL DEFAULT 'scheduled',
    status             TEXT NOT NULL DEFAULT 'pending',
    episodes_planned   INT8 NOT NULL DEFAULT 0,
    episodes_replayed  INT8 NOT NULL DEFAULT 0,
    memories_strengthened INT8 NOT NULL DEFAULT 0,
    mean_priority      FLOAT8,
    metrics            JSONB NOT NULL DEFAULT '{}'::JSONB,
    error              TEXT,
    started_at         TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT replay_sessions_strategy_check CHECK (strategy IN ('prioritized', 'random', 'recent', 'reverse', 'interleaved')),
    CONSTRAINT replay_sessions_trigger_check CHECK (trigger_reason IN ('scheduled', 'idle', 'consolidation', 'manual', 'error_spike')),
    CONSTRAINT replay_sessions_status_check CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT replay_sessions_counts_check CHECK (episodes_planned >= 0 AND episodes_replayed >= 0 AND memories_strengthened >= 0)
);

CREATE INDEX IF NOT EXISTS replay_sessions_agent_created_idx ON replay_sessions (agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS replay_sessions_status_idx ON replay_sessions (status, created_at);

CREATE TABLE IF NOT EXISTS replay_episodes (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id          UUID NOT NULL REFERENCES replay_sessions (id) ON DELETE CASCADE,
    memory_id           UUID REFERENCES agent_memories (id) ON DELETE SET NULL,
    learning_episode_id UUID REFERENCES learning_episodes (id) ON DELETE SET NULL,
    sequence_no         INT8 NOT NULL,
    priority            FLOAT8 NOT NULL DEFAULT 0,
    replay_count        INT8 NOT NULL DEFAULT 1,
    importance_before   FLOAT8,
    importance_after    FLOAT8,
    reward_delta        FLOAT8,
    outcome             JSONB NOT NULL DEFAULT '{}'::JSONB,
    replayed_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT replay_episodes_session_seq_key UNIQUE (session_id, sequence_no),
    CONSTRAINT replay_episodes_seq_check CHECK (sequence_no >= 0),
    CONSTRAINT replay_episodes_replay_count_check CHECK (replay_count >= 1)
);

CREATE INDEX IF NOT EXISTS replay_episodes_memory_idx ON replay_episodes (memory_id, replayed_at DESC);

CREATE INDEX IF NOT EXISTS replay_episodes_learning_episode_idx ON replay_episodes (learning_episode_id);
