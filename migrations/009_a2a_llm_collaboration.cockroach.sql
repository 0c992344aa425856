-- CockroachDB only: row-level TTL for the high-churn tables of 009.
ALTER TABLE llm_collaboration_responses SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
