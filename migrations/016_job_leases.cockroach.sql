-- CockroachDB only: finished jobs and their attempts expire after 7 days (row-level TTL; an
-- expression that is NULL never expires, so active jobs and open attempts stay). The
-- AT TIME ZONE form keeps the expression immutable, as CockroachDB requires.
-- On PostgreSQL the worker's prune duty removes the same rows after JOB_QUEUE_RETENTION_DAYS.
ALTER TABLE job_queue SET (ttl_expiration_expression = 'CASE WHEN status IN (''succeeded'', ''failed'', ''cancelled'') THEN ((finished_at AT TIME ZONE ''UTC'') + INTERVAL ''7 days'') AT TIME ZONE ''UTC'' ELSE NULL END', ttl_job_cron = '@hourly');

ALTER TABLE job_attempts SET (ttl_expiration_expression = '((finished_at AT TIME ZONE ''UTC'') + INTERVAL ''7 days'') AT TIME ZONE ''UTC''', ttl_job_cron = '@hourly');
