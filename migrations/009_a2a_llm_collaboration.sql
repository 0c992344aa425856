-- 009 A2A protocol and LLM collaboration: agent-to-agent conversations and
-- messages, and multi-model collaborations with their individual responses.
-- llm_collaboration_responses is high-churn (expires_at, 30 days): TTL on CockroachDB,
-- pruned on PostgreSQL.

CREATE TABLE IF NOT EXISTS a2a_conversations (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    topic              TEXT,
    initiator_agent_id UUID REFERENCES agents (id) ON DELETE SET NULL,
    participant_ids    UUID[] NOT NULL DEFAULT ARRAY[]::UUID[],
    protocol_version   TEXT NOT NULL DEFAULT '1.0',
    status             TEXT NOT NULL DEFAULT 'open',
    metadata           JSONB NOT NULL DEFAULT '{}'::JSONB,
    message_count      INT8 NOT NULL DEFAULT 0,
    last_message_at    TIMESTAMPTZ,
    closed_at          TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT a2a_conversations_status_check CHECK (status IN ('open', 'active', 'closed', 'archived')),
    CONSTRAINT a2a_conversations_message_count_check CHECK (message_count >= 0)
);

CREATE INDEX IF NOT EXISTS a2a_conversations_status_last_msg_idx ON a2a_conversations (status, last_message_at DESC);

CREATE INDEX IF NOT EXISTS a2a_conversations_initiator_idx ON a2a_conversations (initiator_agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS a2a_conversations_participants_gin_idx ON a2a_conversations USING GIN (participant_ids);

CREATE TABLE IF NOT EXISTS a2a_messages (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id    UUID NOT NULL REFERENCES a2a_conversations (id) ON DELETE CASCADE,
    sender_agent_id    UUID REFERENCES agents (id) ON DELETE SET NULL,
    -- NULL recipient: broadcast to every participant
    recipient_agent_id UUID REFERENCES agents (id) ON DELETE CASCADE,
    in_reply_to_id     UUID REFERENCES a2a_messages (id) ON DELETE SET NULL,
    message_type       TEXT NOT NULL DEFAULT 'inform',
    content            JSONB NOT NULL DEFAULT '{}'::JSONB,
    correlation_id     TEXT,
    read_at            TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT a2a_messages_type_check CHECK (message_type IN ('request', 'response', 'inform', 'query', 'propose', 'accept', 'reject', 'error', 'cancel'))
);

CREATE INDEX IF NOT EXISTS a2a_messages_conversation_created_idx ON a2a_messages (conversation_id, created_at);

-- inbox: unread first (read_at IS NULL)
CREATE INDEX IF NOT EXISTS a2a_messages_recipient_read_idx ON a2a_messages (recipient_agent_id, read_at);

CREATE INDEX IF NOT EXISTS a2a_messages_sender_created_idx ON a2a_messages (sender_agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS a2a_messages_reply_idx ON a2a_messages (in_reply_to_id);

CREATE TABLE IF NOT EXISTS llm_collaborations (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id       UUID REFERENCES a2a_conversations (id) ON DELETE SET NULL,
    task_id               UUID REFERENCES agent_tasks (id) ON DELETE SET NULL,
    job_id                UUID,
    strategy              TEXT NOT NULL DEFAULT 'consensus',
    status                TEXT NOT NULL DEFAULT 'pending',
    prompt                TEXT NOT NULL,
    models                TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    participant_agent_ids UUID[] NOT NULL DEFAULT ARRAY[]::UUID[],
    rounds_planned        INT8 NOT NULL DEFAULT 1,
    rounds_completed      INT8 NOT NULL DEFAULT 0,
    result                JSONB,
    consensus_score       FLOAT8,
    error                 TEXT,
    started_at            TIMESTAMPTZ,
    finished_at           TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT llm_collaborations_strategy_check CHECK (strategy IN ('consensus', 'debate', 'delegate', 'ensemble', 'critique')),
    CONSTRAINT llm_collaborations_status_check CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT llm_collaborations_rounds_check CHECK (rounds_planned >= 1 AND rounds_completed >= 0),
    CONSTRAINT llm_collaborations_consensus_check CHECK (consensus_score IS NULL OR (consensus_score >= 0 AND consensus_score <= 1))
);

CREATE INDEX IF NOT EXISTS llm_collaborations_status_created_idx ON llm_collaborations (status, created_at DESC);

CREATE INDEX IF NOT EXISTS llm_collaborations_conversation_idx ON llm_collaborations (conversation_id);

CREATE INDEX IF NOT EXISTS llm_collaborations_task_idx ON llm_collaborations (task_id);

CREATE TABLE IF NOT EXISTS llm_collaboration_responses (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    collaboration_id  UUID NOT NULL REFERENCES llm_collaborations (id) ON DELETE CASCADE,
    agent_id          UUID REFERENCES agents (id) ON DELETE SET NULL,
    model             TEXT NOT NULL,
    round_no          INT8 NOT NULL DEFAULT 1,
    response          TEXT,
    score             FLOAT8,
    prompt_tokens     INT8 NOT NULL DEFAULT 0,
    completion_tokens INT8 NOT NULL DEFAULT 0,
    latency_ms        FLOAT8,
    error             TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '30 days',
    CONSTRAINT llm_collaboration_responses_round_check CHECK (round_no >= 1),
    CONSTRAINT llm_collaboration_responses_tokens_check CHECK (prompt_tokens >= 0 AND completion_tokens >= 0)
);

CREATE INDEX IF NOT EXISTS llm_collaboration_responses_collab_round_idx ON llm_collaboration_responses (collaboration_id, round_no, created_at);

CREATE INDEX IF NOT EXISTS llm_collaboration_responses_expires_idx ON llm_collaboration_responses (expires_at);
