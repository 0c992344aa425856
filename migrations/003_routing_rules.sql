-- 003 routing rules: how work is routed to agents, and a log of each decision.
-- routing_decisions is high-churn (expires_at, 14 days): TTL on CockroachDB, pruned on PostgreSQL.

CREATE TABLE IF NOT EXISTS routing_rules (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name              TEXT NOT NULL UNIQUE,
    description       TEXT,
    priority          INT8 NOT NULL DEFAULT 100,
    conditions        JSONB NOT NULL DEFAULT '{}'::JSONB,
    action            TEXT NOT NULL DEFAULT 'route',
    target_agent_id   UUID REFERENCES agents (id) ON DELETE SET NULL,
    target_agent_type TEXT,
    target_capability TEXT,
    is_active         BOOL NOT NULL DEFAULT true,
    match_count       INT8 NOT NULL DEFAULT 0,
    last_matched_at   TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT routing_rules_action_check CHECK (action IN ('route', 'broadcast', 'escalate', 'drop')),
    CONSTRAINT routing_rules_priority_check CHECK (priority >= 0),
    CONSTRAINT routing_rules_match_count_check CHECK (match_count >= 0),
    CONSTRAINT routing_rules_name_not_blank CHECK (name <> '')
);

-- evaluation order: active rules, lowest priority number first
CREATE INDEX IF NOT EXISTS routing_rules_active_priority_idx ON routing_rules (is_active, priority);

CREATE INDEX IF NOT EXISTS routing_rules_target_agent_idx ON routing_rules (target_agent_id);

CREATE TABLE IF NOT EXISTS routing_decisions (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    rule_id           UUID REFERENCES routing_rules (id) ON DELETE SET NULL,
    task_id           UUID REFERENCES agent_tasks (id) ON DELETE CASCADE,
    selected_agent_id UUID REFERENCES agents (id) ON DELETE SET NULL,
    request_type      TEXT NOT NULL,
    request           JSONB NOT NULL DEFAULT '{}'::JSONB,
    candidates        JSONB NOT NULL DEFAULT '[]'::JSONB,
    score             FLOAT8,
    reason            TEXT,
    latency_ms        FLOAT8,
    outcome           TEXT NOT NULL DEFAULT 'routed',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '14 days',
    CONSTRAINT routing_decisions_outcome_check CHECK (outcome IN ('routed', 'broadcast', 'escalated', 'dropped', 'no_match')),
    CONSTRAINT routing_decisions_latency_check CHECK (latency_ms IS NULL OR latency_ms >= 0)
);

CREATE INDEX IF NOT EXISTS routing_decisions_rule_created_idx ON routing_decisions (rule_id, created_at DESC);

CREATE INDEX IF NOT EXISTS routing_decisions_agent_created_idx ON routing_decisions (selected_agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS routing_decisions_task_idx ON routing_decisions (task_id);

CREATE INDEX IF NOT EXISTS routing_decisions_expires_idx ON routing_decisions (expires_at);

-- seed: a catch-all rule evaluated last
INSERT INTO routing_rules (name, description, priority, conditions, action, target_agent_type)
VALUES ('default-fallback', 'Catch-all: route unmatched work to any general-purpose agent', 1000000, '{}'::JSONB, 'route', 'general')
ON CONFLICT DO NOTHING;
