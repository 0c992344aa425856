-- 014 ops hardening: the durable job queue, API keys and their audit log,
-- worker heartbeats, and the materialized views the dashboard reads.
--
-- Tables with an expires_at column (high-churn rows). On CockroachDB row-level TTL
-- deletes them (NNN_name.cockroach.sql siblings). On PostgreSQL the worker prune job
-- deletes rows WHERE expires_at < now(). Expired rows stay visible until deleted, so
-- queries that care filter on expires_at.
--   agent_events                 001  30 days
--   routing_decisions            003  14 days
--   attention_shifts             006  14 days
--   llm_requests                 008   7 days
--   llm_response_cache           008  24 hours
--   llm_collaboration_responses  009  30 days
--   supabase_sync_runs           010  30 days
--   ingestion_log                011  30 days
--   dashboard_snapshots          011  30 days
--   system_metrics               011  14 days
--   organism_snapshots           012   7 days
--   api_audit_log                014  90 days
-- job_queue rows, finished or not, never expire (no expires_at, no TTL).

CREATE TABLE IF NOT EXISTS job_queue (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    job_type       TEXT NOT NULL,
    payload        JSONB NOT NULL DEFAULT '{}'::JSONB,
    status         TEXT NOT NULL DEFAULT 'pending',
    attempts       INT8 NOT NULL DEFAULT 0,
    max_attempts   INT8 NOT NULL DEFAULT 5,
    run_after      TIMESTAMPTZ NOT NULL DEFAULT now(),
    unique_key     TEXT,
    dispatch_token TEXT,
    last_error     TEXT,
    result         JSONB,
    worker_id      TEXT,
    heartbeat_at   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at    TIMESTAMPTZ,
    CONSTRAINT job_queue_status_check CHECK (status IN ('pending', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT job_queue_max_attempts_check CHECK (max_attempts >= 1),
    CONSTRAINT job_queue_attempts_check CHECK (attempts >= 0),
    CONSTRAINT job_queue_job_type_not_blank CHECK (job_type <> '')
);

-- enqueue is idempotent while a job with the same key is still active
CREATE UNIQUE INDEX IF NOT EXISTS job_queue_unique_active_key ON job_queue (unique_key)
    WHERE status IN ('pending', 'queued', 'running', 'retrying') AND unique_key IS NOT NULL;

-- reconciler: due pending/retrying rows, stalled queued/running rows
CREATE INDEX IF NOT EXISTS job_queue_status_run_after_idx ON job_queue (status, run_after);

CREATE INDEX IF NOT EXISTS job_queue_type_status_idx ON job_queue (job_type, status);

CREATE INDEX IF NOT EXISTS job_queue_created_idx ON job_queue (created_at);

-- failure alerts: failed jobs in the last minutes
CREATE INDEX IF NOT EXISTS job_queue_failed_finished_idx ON job_queue (finished_at) WHERE status = 'failed';

CREATE TABLE IF NOT EXISTS api_keys (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name         TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL UNIQUE,
    key_prefix   TEXT NOT NULL,
    scopes       TEXT[] NOT NULL DEFAULT ARRAY['read', 'write']::TEXT[],
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT api_keys_name_not_blank CHECK (name <> ''),
    CONSTRAINT api_keys_prefix_not_blank CHECK (key_prefix <> '')
);

CREATE INDEX IF NOT EXISTS api_keys_prefix_idx ON api_keys (key_prefix);

CREATE TABLE IF NOT EXISTS api_audit_log (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    api_key_id    UUID REFERENCES api_keys (id) ON DELETE SET NULL,
    key_prefix    TEXT,
    action        TEXT NOT NULL,
    method        TEXT,
    path          TEXT,
    status_code   INT8,
    resource_type TEXT,
    resource_id   TEXT,
    request_id    TEXT,
    client_ip     TEXT,
    details       JSONB NOT NULL DEFAULT '{}'::JSONB,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '90 days',
    CONSTRAINT api_audit_log_status_code_check CHECK (status_code IS NULL OR (status_code >= 100 AND status_code <= 599))
);

CREATE INDEX IF NOT EXISTS api_audit_log_key_created_idx ON api_audit_log (api_key_id, created_at DESC);

CREATE INDEX IF NOT EXISTS api_audit_log_created_idx ON api_audit_log (created_at);

CREATE INDEX IF NOT EXISTS api_audit_log_resource_idx ON api_audit_log (resource_type, resource_id);

CREATE INDEX IF NOT EXISTS api_audit_log_expires_idx ON api_audit_log (expires_at);

CREATE TABLE IF NOT EXISTS worker_heartbeats (
    worker_id    TEXT PRIMARY KEY,
    hostname     TEXT,
    pid          INT8,
    version      TEXT,
    queue_name   TEXT,
    jobs_running INT8 NOT NULL DEFAULT 0,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT worker_heartbeats_jobs_running_check CHECK (jobs_running >= 0),
    CONSTRAINT worker_heartbeats_worker_not_blank CHECK (worker_id <> '')
);

CREATE INDEX IF NOT EXISTS worker_heartbeats_last_seen_idx ON worker_heartbeats (last_seen_at);

-- stalled-work detection on older tables
CREATE INDEX IF NOT EXISTS workflow_executions_running_updated_idx ON workflow_executions (updated_at) WHERE status = 'running';

CREATE INDEX IF NOT EXISTS ingestion_log_running_idx ON ingestion_log (started_at) WHERE status = 'running';

-- Materialized views: refreshed by the worker in autocommit (never inside a transaction).
-- Each has a unique index on plain columns so PostgreSQL can refresh it without blocking readers.

-- sync lag per external system. lag_seconds is measured from the last success
-- when known, otherwise the lag the syncer last stored.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_sync_lag AS
SELECT
    s.system_name AS system_name,
    s.status AS status,
    s.last_sync_at AS last_sync_at,
    s.last_success_at AS last_success_at,
    CASE
        WHEN s.last_success_at IS NOT NULL
            THEN CAST(EXTRACT(EPOCH FROM (now() - s.last_success_at)) AS FLOAT8)
        ELSE s.lag_seconds
    END AS lag_seconds,
    s.records_synced AS records_synced,
    s.last_error AS last_error,
    now() AS refreshed_at
FROM sync_status AS s;

CREATE UNIQUE INDEX IF NOT EXISTS mv_sync_lag_system_key ON mv_sync_lag (system_name);

-- backlog per job type and status
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_job_queue_backlog AS
SELECT
    j.job_type AS job_type,
    j.status AS status,
    COUNT(*) AS job_count,
    MIN(j.created_at) AS oldest_created_at,
    CAST(EXTRACT(EPOCH FROM (now() - MIN(j.created_at))) AS FLOAT8) AS oldest_age_seconds,
    MIN(j.run_after) AS next_run_after,
    MAX(j.updated_at) AS last_updated_at,
    now() AS refreshed_at
FROM job_queue AS j
GROUP BY j.job_type, j.status;

CREATE UNIQUE INDEX IF NOT EXISTS mv_job_queue_backlog_type_status_key ON mv_job_queue_backlog (job_type, status);

-- ingestion runs and failures per source over the last 24 hours
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_ingestion_errors AS
SELECT
    l.source AS source,
    COUNT(*) AS runs,
    CAST(SUM(CASE WHEN l.status = 'failed' THEN 1 ELSE 0 END) AS INT8) AS failed_runs,
    CAST(SUM(CASE WHEN l.status = 'partial' THEN 1 ELSE 0 END) AS INT8) AS partial_runs,
    CAST(COALESCE(SUM(l.rows_failed), 0) AS INT8) AS rows_failed,
    MAX(CASE WHEN l.status = 'failed' THEN COALESCE(l.finished_at, l.started_at) END) AS last_failure_at,
    MAX(l.started_at) AS last_run_at,
    now() AS refreshed_at
FROM ingestion_log AS l
WHERE l.started_at >= now() - INTERVAL '24 hours'
GROUP BY l.source;

CREATE UNIQUE INDEX IF NOT EXISTS mv_ingestion_errors_source_key ON mv_ingestion_errors (source);
