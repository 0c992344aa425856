-- 011 enhanced databrain: ingestion bookkeeping (financial, e-mail), and the
-- tables behind the dashboard (snapshots, metrics, alerts).
-- High-churn (expires_at): ingestion_log (30 days), dashboard_snapshots (30 days),
-- system_metrics (14 days). TTL on CockroachDB, pruned on PostgreSQL.

CREATE TABLE IF NOT EXISTS ingestion_log (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    source        TEXT NOT NULL,
    job_id        UUID,
    status        TEXT NOT NULL DEFAULT 'running',
    rows_total    INT8 NOT NULL DEFAULT 0,
    rows_ok       INT8 NOT NULL DEFAULT 0,
    rows_failed   INT8 NOT NULL DEFAULT 0,
    errors        JSONB NOT NULL DEFAULT '[]'::JSONB,
    error_message TEXT,
    details       JSONB NOT NULL DEFAULT '{}'::JSONB,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '30 days',
    CONSTRAINT ingestion_log_status_check CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    CONSTRAINT ingestion_log_rows_check CHECK (rows_total >= 0 AND rows_ok >= 0 AND rows_failed >= 0),
    CONSTRAINT ingestion_log_source_not_blank CHECK (source <> '')
);

CREATE INDEX IF NOT EXISTS ingestion_log_source_started_idx ON ingestion_log (source, started_at DESC);

CREATE INDEX IF NOT EXISTS ingestion_log_status_started_idx ON ingestion_log (status, started_at DESC);

CREATE INDEX IF NOT EXISTS ingestion_log_started_idx ON ingestion_log (started_at);

CREATE INDEX IF NOT EXISTS ingestion_log_job_idx ON ingestion_log (job_id);

CREATE INDEX IF NOT EXISTS ingestion_log_expires_idx ON ingestion_log (expires_at);

CREATE TABLE IF NOT EXISTS email_ingest_state (
    mailbox           TEXT PRIMARY KEY,
    last_uid          INT8,
    uid_validity      INT8,
    last_message_at   TIMESTAMPTZ,
    messages_ingested INT8 NOT NULL DEFAULT 0,
    status            TEXT NOT NULL DEFAULT 'idle',
    last_error        TEXT,
    last_run_at       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT email_ingest_state_status_check CHECK (status IN ('idle', 'running', 'ok', 'error', 'disabled')),
    CONSTRAINT email_ingest_state_messages_check CHECK (messages_ingested >= 0),
    CONSTRAINT email_ingest_state_uid_check CHECK (last_uid IS NULL OR last_uid >= 0),
    CONSTRAINT email_ingest_state_mailbox_not_blank CHECK (mailbox <> '')
);

CREATE TABLE IF NOT EXISTS email_messages (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    mailbox      TEXT NOT NULL,
    uid          INT8,
    message_id   TEXT NOT NULL,
    thread_id    TEXT,
    subject      TEXT,
    sender       TEXT,
    recipients   TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    received_at  TIMESTAMPTZ,
    headers      JSONB NOT NULL DEFAULT '{}'::JSONB,
    body_text    TEXT,
    attachments  JSONB NOT NULL DEFAULT '[]'::JSONB,
    is_processed BOOL NOT NULL DEFAULT false,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT email_messages_mailbox_message_key UNIQUE (mailbox, message_id)
);

CREATE INDEX IF NOT EXISTS email_messages_mailbox_received_idx ON email_messages (mailbox, received_at DESC);

CREATE INDEX IF NOT EXISTS email_messages_unprocessed_idx ON email_messages (created_at) WHERE is_processed = false;

CREATE TABLE IF NOT EXISTS dashboard_snapshots (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    snapshot_type TEXT NOT NULL,
    captured_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    data          JSONB NOT NULL DEFAULT '{}'::JSONB,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '30 days',
    CONSTRAINT dashboard_snapshots_type_not_blank CHECK (snapshot_type <> '')
);

CREATE INDEX IF NOT EXISTS dashboard_snapshots_type_captured_idx ON dashboard_snapshots (snapshot_type, captured_at DESC);

CREATE INDEX IF NOT EXISTS dashboard_snapshots_expires_idx ON dashboard_snapshots (expires_at);

CREATE TABLE IF NOT EXISTS system_metrics (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    component    TEXT NOT NULL,
    metric_name  TEXT NOT NULL,
    metric_value FLOAT8 NOT NULL,
    unit         TEXT,
    labels       JSONB NOT NULL DEFAULT '{}'::JSONB,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL DEFAULT now() + INTERVAL '14 days',
    CONSTRAINT system_metrics_name_not_blank CHECK (metric_name <> '')
);

CREATE INDEX IF NOT EXISTS system_metrics_name_recorded_idx ON system_metrics (metric_name, recorded_at DESC);

CREATE INDEX IF NOT EXISTS system_metrics_component_recorded_idx ON system_metrics (component, recorded_at DESC);

CREATE INDEX IF NOT EXISTS system_metrics_expires_idx ON system_metrics (expires_at);

CREATE TABLE IF NOT EXISTS system_alerts (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    alert_key       TEXT NOT NULL,
    component       TEXT NOT NULL,
    severity        TEXT NOT NULL DEFAULT 'warning',
    status          TEXT NOT NULL DEFAULT 'firing',
    message         TEXT NOT NULL,
    labels          JSONB NOT NULL DEFAULT '{}'::JSONB,
    occurrences     INT8 NOT NULL DEFAULT 1,
    fired_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT,
    resolved_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT system_alerts_severity_check CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    CONSTRAINT system_alerts_status_check CHECK (status IN ('firing', 'acknowledged', 'resolved')),
    CONSTRAINT system_alerts_occurrences_check CHECK (occurrences >= 1)
);

-- one open alert per key: a repeat bumps occurrences instead of adding a row
CREATE UNIQUE INDEX IF NOT EXISTS system_alerts_open_key ON system_alerts (alert_key) WHERE status IN ('firing', 'acknowledged');

CREATE INDEX IF NOT EXISTS system_alerts_status_fired_idx ON system_alerts (status, fired_at DESC);
