-- CockroachDB only: the indexes whose first column only grows (created_at) send every insert
-- to the range that holds their end, one node at a time. Hash-sharded versions spread those
-- writes over several ranges; ordered scans with a LIMIT (the API's listings and cursors)
-- still use them. The plain indexes they replace are dropped.
CREATE INDEX IF NOT EXISTS agent_events_created_id_hash_idx ON agent_events (created_at, id) USING HASH;

DROP INDEX IF EXISTS agent_events@agent_events_created_id_idx;

CREATE INDEX IF NOT EXISTS job_queue_created_hash_idx ON job_queue (created_at) USING HASH;

DROP INDEX IF EXISTS job_queue@job_queue_created_idx;
