-- 012 organism visualization: the system drawn as a living graph. Nodes are
-- agents, services, tables, models, and links carry the flow between them.
-- organism_snapshots is high-churn (expires_at, 7 days): TTL on CockroachDB, pruned on PostgreSQL.

CREATE TABLE IF NOT EXISTS organism_nodes (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    node_key   TEXT NOT NULL UNIQUE,
    node_kind  TEXT NOT NULL,
    agent_id   UUID REFERENCES agents (id) ON DELETE CASCADE,
    label      TEXT NOT NULL,
    health     TEXT NOT NULL DEFAULT 'unknown',
    activity   FLOAT8 NOT NULL DEFAULT 0,
    pos_x      FLOAT8,
    pos_y      FLOAT8,
    pos_z      FLOAT8,
    radius     FLOAT8 NOT NULL DEFAULT 1,
    color      TEXT,
    properties JSONB NOT NULL DEFAULT '{}'::JSONB,
    last_active_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT organism_nodes_kind_check CHECK (node_kind IN ('agent', 'service', 'table', 'model', 'queue', 'workflow', 'external')),
    CONSTRAINT organism_nodes_health_check CHECK (health IN ('healthy', 'degraded', 'down', 'unknown')),
    CONSTRAINT organism_nodes_activity_check CHECK (activity >= 0 AND activity <= 1),
    CONSTRAINT organism_nodes_radius_check CHECK (radius > 0)
);

CREATE INDEX IF NOT EXISTS organism_nodes_kind_idx ON organism_nodes (node_kind, health);

CREATE INDEX IF NOT EXISTS organism_nodes_agent_idx ON organism_nodes (agent_id);

CREATE TABLE IF NOT EXISTS organism_links (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    source_node_id UUID NOT NULL REFERENCES organism_nodes (id) ON DELETE CASCADE,
    target_node_id UUID NOT NULL REFERENCES organism_nodes (id) ON DELETE CASCADE,
    link_kind      TEXT NOT NULL DEFAULT 'data',
    weight         FLOAT8 NOT NULL DEFAULT 1,
    flow_rate      FLOAT8 NOT NULL DEFAULT 0,
    properties     JSONB NOT NULL DEFAULT '{}'::JSONB,
    last_active_at TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT organism_links_source_target_kind_key UNIQUE (source_node_id, target_node_id, link_kind),
    CONSTRAINT organism_links_not_self CHECK (source_node_id <> target_node_id),
    CONSTRAINT organism_links_kind_check CHECK (link_kind IN ('data', 'control', 'message', 'dependency', 'sync')),
    CONSTRAINT organism_links_weight_check CHECK (weight >= 0 AND flow_rate >= 0)
);

CREATE INDEX IF NOT EXISTS organism_links_target_idx ON organism_links (target_node_id, link_kind);

CREATE TABLE IF NOT EXISTS organism_snapshots (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    captured_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    node_count  INT8 NOT NULL DEFAULT 0,
    link_count  INT8 NOT NULL DEFAULT 0,
    layout      JSONB NOT NULL DEFAULT '{}'::JSONB,
    metrics     JSONB NOT NULL DEFAULT '{}'::JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '7 days',
    CONSTRAINT organism_snapshots_counts_check CHECK (node_count >= 0 AND link_count >= 0)
);

CREATE INDEX IF NOT EXISTS organism_snapshots_captured_idx ON organism_snapshots (captured_at DESC);

CREATE INDEX IF NOT EXISTS organism_snapshots_expires_idx ON organism_snapshots (expires_at);
