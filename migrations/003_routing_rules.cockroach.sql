-- CockroachDB only: row-level TTL for the high-churn tables of 003.
ALTER TABLE routing_decisions SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
