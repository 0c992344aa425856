-- CockroachDB only: row-level TTL for the high-churn tables of 012.
ALTER TABLE organism_snapshots SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
