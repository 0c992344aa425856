-- 017 Supabase sync per target: one cursor per (target, table), so a run against one target
-- never moves another target's cursor, plus when each pair last had its full key comparison
-- (the pass that propagates deletes and repairs anything the incremental copy missed).
-- supabase_sync_state stays the per-table summary (and the parent of supabase_sync_runs).
-- The old per-table cursors are deliberately not carried over: any job could move them to an
-- arbitrary target, so every target starts with a full, idempotent copy.

CREATE TABLE IF NOT EXISTS supabase_sync_cursors (
    target_name    TEXT NOT NULL,
    table_name     TEXT NOT NULL,
    cursor_value   TEXT,
    rows_synced    INT8 NOT NULL DEFAULT 0,
    rows_deleted   INT8 NOT NULL DEFAULT 0,
    last_synced_at TIMESTAMPTZ,
    compared_at    TIMESTAMPTZ,
    status         TEXT NOT NULL DEFAULT 'idle',
    last_error     TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (target_name, table_name),
    CONSTRAINT supabase_sync_cursors_status_check CHECK (status IN ('idle', 'running', 'ok', 'error')),
    CONSTRAINT supabase_sync_cursors_rows_check CHECK (rows_synced >= 0 AND rows_deleted >= 0),
    CONSTRAINT supabase_sync_cursors_target_not_blank CHECK (target_name <> '')
);

ALTER TABLE supabase_sync_runs ADD COLUMN IF NOT EXISTS target_name TEXT;
