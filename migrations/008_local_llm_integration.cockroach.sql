-- CockroachDB only: row-level TTL for the high-churn tables of 008.
ALTER TABLE llm_requests SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
ALTER TABLE llm_response_cache SET (ttl_expiration_expression = 'expires_at', ttl_job_cron = '@hourly');
