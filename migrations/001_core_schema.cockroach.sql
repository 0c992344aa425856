-- CockroachDB only: row-level TTL for the high-churn tables of 001.
ALTER TABLE agent_events SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
