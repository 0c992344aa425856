-- 015 agent reputation scoring: a current score per agent and the history of
-- events that moved it.

CREATE TABLE IF NOT EXISTS agent_reputation (
    agent_id          UUID PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    score             FLOAT8 NOT NULL DEFAULT 0.5,
    reliability       FLOAT8 NOT NULL DEFAULT 0.5,
    quality           FLOAT8 NOT NULL DEFAULT 0.5,
    responsiveness    FLOAT8 NOT NULL DEFAULT 0.5,
    successes         INT8 NOT NULL DEFAULT 0,
    failures          INT8 NOT NULL DEFAULT 0,
    endorsements      INT8 NOT NULL DEFAULT 0,
    complaints        INT8 NOT NULL DEFAULT 0,
    avg_latency_ms    FLOAT8,
    last_event_at     TIMESTAMPTZ,
    last_decayed_at   TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT agent_reputation_score_check CHECK (score >= 0 AND score <= 1),
    CONSTRAINT agent_reputation_components_check CHECK (
        reliability >= 0 AND reliability <= 1
        AND quality >= 0 AND quality <= 1
        AND responsiveness >= 0 AND responsiveness <= 1
    ),
    CONSTRAINT agent_reputation_counts_check CHECK (successes >= 0 AND failures >= 0 AND endorsements >= 0 AND complaints >= 0),
    CONSTRAINT agent_reputation_latency_check CHECK (avg_latency_ms IS NULL OR avg_latency_ms >= 0)
);

CREATE INDEX IF NOT EXISTS agent_reputation_score_idx ON agent_reputation (score DESC);

CREATE TABLE IF NOT EXISTS agent_reputation_events (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id        UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    delta           FLOAT8 NOT NULL DEFAULT 0,
    score_before    FLOAT8,
    score_after     FLOAT8,
    reason          TEXT,
    task_id         UUID REFERENCES agent_tasks (id) ON DELETE SET NULL,
    source_agent_id UUID REFERENCES agents (id) ON DELETE SET NULL,
    job_id          UUID,
    metadata        JSONB NOT NULL DEFAULT '{}'::JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT agent_reputation_events_type_check CHECK (event_type IN ('task_success', 'task_failure', 'timeout', 'endorsement', 'complaint', 'decay', 'manual_adjustment')),
    CONSTRAINT agent_reputation_events_delta_check CHECK (delta >= -1 AND delta <= 1),
    CONSTRAINT agent_reputation_events_scores_check CHECK (
        (score_before IS NULL OR (score_before >= 0 AND score_before <= 1))
        AND (score_after IS NULL OR (score_after >= 0 AND score_after <= 1))
    )
);

CREATE INDEX IF NOT EXISTS agent_reputation_events_agent_created_idx ON agent_reputation_events (agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS agent_reputation_events_type_created_idx ON agent_reputation_events (event_type, created_at DESC);

CREATE INDEX IF NOT EXISTS agent_reputation_events_task_idx ON agent_reputation_events (task_id);
