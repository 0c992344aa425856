-- 001 core schema: agents, their event stream, and market data.
-- Portable SQL (CockroachDB v26.2 and PostgreSQL 15): every statement is idempotent.
-- agent_events is high-churn: expires_at (30 days) is enforced by row-level TTL on
-- CockroachDB (001_core_schema.cockroach.sql) and by the worker prune job on PostgreSQL.

CREATE TABLE IF NOT EXISTS agents (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name              TEXT NOT NULL UNIQUE,
    agent_type        TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'idle',
    description       TEXT,
    capabilities      TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    config            JSONB NOT NULL DEFAULT '{}'::JSONB,
    metadata          JSONB NOT NULL DEFAULT '{}'::JSONB,
    last_heartbeat_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT agents_status_check CHECK (status IN ('active', 'idle', 'busy', 'offline', 'error')),
    CONSTRAINT agents_name_not_blank CHECK (name <> ''),
    CONSTRAINT agents_type_not_blank CHECK (agent_type <> '')
);

CREATE INDEX IF NOT EXISTS agents_type_status_idx ON agents (agent_type, status);

CREATE INDEX IF NOT EXISTS agents_heartbeat_idx ON agents (last_heartbeat_at);

CREATE INDEX IF NOT EXISTS agents_capabilities_gin_idx ON agents USING GIN (capabilities);

CREATE TABLE IF NOT EXISTS agent_events (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    UUID REFERENCES agents (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    payload     JSONB NOT NULL DEFAULT '{}'::JSONB,
    severity    TEXT NOT NULL DEFAULT 'info',
    source      TEXT,
    correlation_id TEXT,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '30 days',
    CONSTRAINT agent_events_severity_check CHECK (severity IN ('debug', 'info', 'warning', 'error', 'critical')),
    CONSTRAINT agent_events_type_not_blank CHECK (event_type <> '')
);

CREATE INDEX IF NOT EXISTS agent_events_agent_occurred_idx ON agent_events (agent_id, occurred_at DESC);

CREATE INDEX IF NOT EXISTS agent_events_type_occurred_idx ON agent_events (event_type, occurred_at DESC);

-- keyset pagination cursor for listings and the live stream resume
CREATE INDEX IF NOT EXISTS agent_events_created_id_idx ON agent_events (created_at, id);

CREATE INDEX IF NOT EXISTS agent_events_expires_idx ON agent_events (expires_at);

CREATE TABLE IF NOT EXISTS financial_data (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol       TEXT NOT NULL,
    ts           TIMESTAMPTZ NOT NULL,
    bar_interval TEXT NOT NULL DEFAULT '1d',
    open         NUMERIC,
    high         NUMERIC,
    low          NUMERIC,
    close        NUMERIC NOT NULL,
    volume       NUMERIC,
    source       TEXT NOT NULL DEFAULT 'manual',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT financial_data_symbol_interval_ts_key UNIQUE (symbol, bar_interval, ts),
    CONSTRAINT financial_data_symbol_not_blank CHECK (symbol <> ''),
    CONSTRAINT financial_data_interval_not_blank CHECK (bar_interval <> ''),
    CONSTRAINT financial_data_high_low_check CHECK (high IS NULL OR low IS NULL OR high >= low),
    CONSTRAINT financial_data_volume_check CHECK (volume IS NULL OR volume >= 0)
);

CREATE INDEX IF NOT EXISTS financial_data_symbol_ts_idx ON financial_data (symbol, ts DESC);

CREATE INDEX IF NOT EXISTS financial_data_source_created_idx ON financial_data (source, created_at);
