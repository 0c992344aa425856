-- Jobs that survive real faults: leases judged by the database's clock, attempt history,
-- retention, and partial indexes for the reconciler's queries.
--
-- A running attempt is owned through a lease (lease_expires_at, set from now() by the claim
-- and by the owner's renewals); the reconciler takes a lease over only once it expired and
-- the database has been reachable for a full lease period (job_lease_clock), so an outage
-- never turns live jobs into lost ones.

ALTER TABLE job_queue ADD COLUMN IF NOT EXISTS lease_expires_at TIMESTAMPTZ;

-- One row per attempt (a claim under a dispatch token, which is unique per attempt).
CREATE TABLE IF NOT EXISTS job_attempts (
    job_id          UUID NOT NULL,
    dispatch_token  TEXT NOT NULL,
    attempt         INT8 NOT NULL,
    worker_id       TEXT,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    outcome         TEXT,
    error           TEXT,
    PRIMARY KEY (job_id, dispatch_token),
    CONSTRAINT job_attempts_outcome_check CHECK (outcome IS NULL OR outcome IN ('succeeded', 'failed', 'retrying', 'timed_out', 'interrupted', 'lost', 'cancelled')),
    CONSTRAINT job_attempts_attempt_check CHECK (attempt >= 0)
);

CREATE INDEX IF NOT EXISTS job_attempts_job_started_idx ON job_attempts (job_id, started_at);

CREATE INDEX IF NOT EXISTS job_attempts_finished_idx ON job_attempts (finished_at);

-- The reconciler's view of the database's reachability: the last pass any worker made, and
-- since when passes have followed each other without a gap (an outage resets it).
CREATE TABLE IF NOT EXISTS job_lease_clock (
    id               INT8 PRIMARY KEY,
    last_tick_at     TIMESTAMPTZ NOT NULL,
    reachable_since  TIMESTAMPTZ NOT NULL,
    CONSTRAINT job_lease_clock_singleton CHECK (id = 1)
);

-- reconciler: due rows, expired leases, queued rows walked by (updated_at, id)
CREATE INDEX IF NOT EXISTS job_queue_due_idx ON job_queue (run_after) WHERE status IN ('pending', 'retrying');

CREATE INDEX IF NOT EXISTS job_queue_lease_idx ON job_queue (lease_expires_at) WHERE status = 'running';

CREATE INDEX IF NOT EXISTS job_queue_queued_walk_idx ON job_queue (updated_at, id) WHERE status = 'queued';

-- retention: finished rows by age
CREATE INDEX IF NOT EXISTS job_queue_finished_at_idx ON job_queue (finished_at) WHERE status IN ('succeeded', 'failed', 'cancelled');
