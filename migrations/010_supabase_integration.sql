-- 010 Supabase integration: per-table incremental sync cursors, a log of sync
-- runs, and the health of every external system we sync with.
-- supabase_sync_runs is high-churn (expires_at, 30 days): TTL on CockroachDB, pruned on PostgreSQL.

CREATE TABLE IF NOT EXISTS supabase_sync_state (
    table_name     TEXT PRIMARY KEY,
    cursor_value   TEXT,
    cursor_column  TEXT NOT NULL DEFAULT 'updated_at',
    direction      TEXT NOT NULL DEFAULT 'pull',
    batch_size     INT8 NOT NULL DEFAULT 500,
    last_synced_at TIMESTAMPTZ,
    rows_synced    INT8 NOT NULL DEFAULT 0,
    status         TEXT NOT NULL DEFAULT 'idle',
    last_error     TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT supabase_sync_state_status_check CHECK (status IN ('idle', 'running', 'ok', 'error', 'disabled')),
    CONSTRAINT supabase_sync_state_direction_check CHECK (direction IN ('pull', 'push', 'both')),
    CONSTRAINT supabase_sync_state_rows_check CHECK (rows_synced >= 0),
    CONSTRAINT supabase_sync_state_batch_check CHECK (batch_size >= 1),
    CONSTRAINT supabase_sync_state_table_not_blank CHECK (table_name <> '')
);

CREATE INDEX IF NOT EXISTS supabase_sync_state_status_idx ON supabase_sync_state (status, last_synced_at);

CREATE TABLE IF NOT EXISTS supabase_sync_runs (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    table_name   TEXT NOT NULL REFERENCES supabase_sync_state (table_name) ON DELETE CASCADE,
    job_id       UUID,
    status       TEXT NOT NULL DEFAULT 'running',
    cursor_from  TEXT,
    cursor_to    TEXT,
    rows_read    INT8 NOT NULL DEFAULT 0,
    rows_written INT8 NOT NULL DEFAULT 0,
    rows_failed  INT8 NOT NULL DEFAULT 0,
    error        TEXT,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '30 days',
    CONSTRAINT supabase_sync_runs_status_check CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    CONSTRAINT supabase_sync_runs_rows_check CHECK (rows_read >= 0 AND rows_written >= 0 AND rows_failed >= 0)
);

CREATE INDEX IF NOT EXISTS supabase_sync_runs_table_started_idx ON supabase_sync_runs (table_name, started_at DESC);

CREATE INDEX IF NOT EXISTS supabase_sync_runs_job_idx ON supabase_sync_runs (job_id);

CREATE INDEX IF NOT EXISTS supabase_sync_runs_expires_idx ON supabase_sync_runs (expires_at);

CREATE TABLE IF NOT EXISTS sync_status (
    system_name     TEXT PRIMARY KEY,
    last_sync_at    TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    lag_seconds     FLOAT8,
    records_synced  INT8 NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'unknown',
    last_error      TEXT,
    details         JSONB NOT NULL DEFAULT '{}'::JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT sync_status_status_check CHECK (status IN ('ok', 'lagging', 'error', 'unknown')),
    CONSTRAINT sync_status_records_check CHECK (records_synced >= 0),
    CONSTRAINT sync_status_system_not_blank CHECK (system_name <> '')
);

CREATE INDEX IF NOT EXISTS sync_status_status_idx ON sync_status (status);
