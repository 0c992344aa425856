-- 006 attention and coordination: what each agent focuses on, how focus
-- shifts, and leased locks that keep agents from working on the same resource.
-- attention_shifts is high-churn (expires_at, 14 days): TTL on CockroachDB, pruned on PostgreSQL.

CREATE TABLE IF NOT EXISTS attention_focus (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    salience    FLOAT8 NOT NULL DEFAULT 0.5,
    reason      TEXT,
    status      TEXT NOT NULL DEFAULT 'active',
    focused_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    focus_until TIMESTAMPTZ,
    released_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT attention_focus_status_check CHECK (status IN ('active', 'released', 'expired')),
    CONSTRAINT attention_focus_salience_check CHECK (salience >= 0 AND salience <= 1)
);

CREATE INDEX IF NOT EXISTS attention_focus_agent_status_idx ON attention_focus (agent_id, status, salience DESC);

CREATE INDEX IF NOT EXISTS attention_focus_target_idx ON attention_focus (target_type, target_id);

CREATE TABLE IF NOT EXISTS attention_shifts (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id      UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    from_focus_id UUID REFERENCES attention_focus (id) ON DELETE SET NULL,
    to_focus_id   UUID REFERENCES attention_focus (id) ON DELETE SET NULL,
    trigger_kind  TEXT NOT NULL DEFAULT 'internal',
    reason        TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '14 days',
    CONSTRAINT attention_shifts_trigger_check CHECK (trigger_kind IN ('internal', 'event', 'message', 'interrupt', 'schedule', 'manual'))
);

CREATE INDEX IF NOT EXISTS attention_shifts_agent_created_idx ON attention_shifts (agent_id, created_at DESC);

CREATE INDEX IF NOT EXISTS attention_shifts_expires_idx ON attention_shifts (expires_at);

CREATE TABLE IF NOT EXISTS coordination_locks (
    resource_key     TEXT PRIMARY KEY,
    holder_agent_id  UUID REFERENCES agents (id) ON DELETE CASCADE,
    holder_token     TEXT NOT NULL,
    purpose          TEXT,
    acquired_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_expires_at TIMESTAMPTZ NOT NULL,
    renewals         INT8 NOT NULL DEFAULT 0,
    metadata         JSONB NOT NULL DEFAULT '{}'::JSONB,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT coordination_locks_key_not_blank CHECK (resource_key <> ''),
    CONSTRAINT coordination_locks_renewals_check CHECK (renewals >= 0)
);

CREATE INDEX IF NOT EXISTS coordination_locks_lease_idx ON coordination_locks (lease_expires_at);

CREATE INDEX IF NOT EXISTS coordination_locks_holder_idx ON coordination_locks (holder_agent_id);
